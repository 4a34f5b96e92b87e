/* SPDX-License-Identifier: MIT */
/*
 * Parsers of /proc files.
 *
 * The text is untrusted: a process controls its own comm, the names of the
 * files it maps and opens (spaces, newlines, " (deleted)" at the end...), its
 * cmdline and environ.  Every parser here
 *   - never reads or writes out of bounds, whatever the input;
 *   - rejects a malformed line, a truncated file (no final '\n'), a number
 *     that does not fit, with -EBADMSG;
 *   - undoes the kernel's escaping where the kernel escapes.
 *
 * Each file has two entry points:
 *   proc_parse_X(buf, len, ..., ret)   parse a text buffer (unit tests, fuzzing,
 *                                      or a file read some other way);
 *   proc_read_X(pid, ..., ret)         read /proc/PID/X and parse it.
 * pid == PROC_SELF (0) means /proc/self.  Functions that also exist per thread
 * take a tid: tid == 0 reads /proc/PID/X, else /proc/PID/task/TID/X.
 *
 * Result structures that own memory have a *_done() destructor that accepts
 * a zeroed structure (or NULL) and leaves it zeroed, so they can be declared
 *     _cleanup_(proc_vma_list_done) struct proc_vma_list vmas = {};
 * Strings inside a result point into storage owned by the result.
 *
 * Returns: >= 0 on success (the number of entries for lists), -errno on
 * failure: -ENOENT/-ESRCH when the process is gone, -EACCES/-EPERM, -EBADMSG
 * for malformed text, -EFBIG for a file larger than the sanity limit.
 * Out-parameters are written only on success.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_SELF 0

/* comm as the kernel shows it: 15 bytes for a user task, up to 63 for kthreads */
#define PROC_COMM_MAX 64
/* MAX_PID_NS_LEVEL is 32; one more for the initial namespace */
#define PROC_NS_LEVELS_MAX 33

/* ------------------------------------------------------------------------ */
/* maps, smaps                                                               */

enum proc_vma_kind {
	PROC_VMA_ANON = 0,	/* no name: private anonymous memory            */
	PROC_VMA_ANON_NAMED,	/* [anon:NAME] (PR_SET_VMA_ANON_NAME); path = NAME */
	PROC_VMA_FILE,		/* a file (path, dev, inode, pgoff)             */
	PROC_VMA_SHMEM_ANON,	/* "/dev/zero (deleted)": MAP_SHARED|MAP_ANONYMOUS */
	PROC_VMA_SHMEM_NAMED,	/* [anon_shmem:NAME]; path = NAME               */
	PROC_VMA_SYSV_SHM,	/* "/SYSV%08x (deleted)": a SysV shm segment     */
	PROC_VMA_MEMFD,		/* "/memfd:NAME (deleted)"                      */
	PROC_VMA_HUGETLB_ANON,	/* "/anon_hugepage (deleted)": shared hugetlb anon */
	PROC_VMA_AIO,		/* "/[aio] (deleted)": an io_setup() ring        */
	PROC_VMA_HEAP,		/* [heap]                                       */
	PROC_VMA_STACK,		/* [stack]                                      */
	PROC_VMA_VDSO,		/* [vdso]                                       */
	PROC_VMA_VVAR,		/* [vvar]                                       */
	PROC_VMA_VVAR_VCLOCK,	/* [vvar_vclock]                                */
	PROC_VMA_VSYSCALL,	/* [vsyscall] (the gate area, not a real VMA)   */
	PROC_VMA_SPECIAL,	/* any other [name], e.g. [uprobes]; path = "[name]" */
};

/* True for the kinds backed by a shmem/hugetlbfs inode (shared between mappers). */
bool proc_vma_kind_is_shmem(enum proc_vma_kind kind);
const char *proc_vma_kind_name(enum proc_vma_kind kind);

/*
 * VmFlags of smaps, one bit per two-letter mnemonic.  These are our own bit
 * numbers, stable across kernels (the kernel's VM_* bits move between
 * versions and configurations).  "??" and mnemonics this code does not know
 * set PROC_VMF_UNKNOWN.
 */
#define PROC_VMF_RD (1ULL << 0)	 /* readable */
#define PROC_VMF_WR (1ULL << 1)	 /* writeable */
#define PROC_VMF_EX (1ULL << 2)	 /* executable */
#define PROC_VMF_SH (1ULL << 3)	 /* shared */
#define PROC_VMF_MR (1ULL << 4)	 /* may read */
#define PROC_VMF_MW (1ULL << 5)	 /* may write */
#define PROC_VMF_ME (1ULL << 6)	 /* may execute */
#define PROC_VMF_MS (1ULL << 7)	 /* may share */
#define PROC_VMF_GD (1ULL << 8)	 /* stack segment grows down */
#define PROC_VMF_PF (1ULL << 9)	 /* pure PFN range */
#define PROC_VMF_DW (1ULL << 10) /* disabled write to the mapped file (< 5.15) */
#define PROC_VMF_LO (1ULL << 11) /* pages are locked in memory */
#define PROC_VMF_IO (1ULL << 12) /* memory mapped I/O area */
#define PROC_VMF_SR (1ULL << 13) /* sequential read advise */
#define PROC_VMF_RR (1ULL << 14) /* random read advise */
#define PROC_VMF_DC (1ULL << 15) /* do not copy on fork */
#define PROC_VMF_DE (1ULL << 16) /* do not expand on remap */
#define PROC_VMF_AC (1ULL << 17) /* accountable */
#define PROC_VMF_NR (1ULL << 18) /* swap space is not reserved */
#define PROC_VMF_HT (1ULL << 19) /* hugetlb */
#define PROC_VMF_SF (1ULL << 20) /* synchronous page fault */
#define PROC_VMF_NL (1ULL << 21) /* non-linear mapping (< 4.0) */
#define PROC_VMF_AR (1ULL << 22) /* architecture specific */
#define PROC_VMF_WF (1ULL << 23) /* wipe on fork */
#define PROC_VMF_DD (1ULL << 24) /* do not include in core dump */
#define PROC_VMF_SD (1ULL << 25) /* soft dirty */
#define PROC_VMF_MM (1ULL << 26) /* mixed map */
#define PROC_VMF_HG (1ULL << 27) /* huge page advise */
#define PROC_VMF_NH (1ULL << 28) /* no huge page advise */
#define PROC_VMF_MG (1ULL << 29) /* mergeable advise (KSM) */
#define PROC_VMF_UM (1ULL << 30) /* userfaultfd missing tracking */
#define PROC_VMF_UW (1ULL << 31) /* userfaultfd wr-protect tracking */
#define PROC_VMF_UI (1ULL << 32) /* userfaultfd minor fault */
#define PROC_VMF_SS (1ULL << 33) /* shadow stack */
#define PROC_VMF_LF (1ULL << 34) /* lock on fault */
#define PROC_VMF_BT (1ULL << 35) /* arm64 BTI guarded page */
#define PROC_VMF_MT (1ULL << 36) /* arm64 MTE allocation tags */
#define PROC_VMF_DP (1ULL << 37) /* droppable */
#define PROC_VMF_SL (1ULL << 38) /* sealed (mseal) */
#define PROC_VMF_GU (1ULL << 39) /* grows up (not on x86) */
#define PROC_VMF_UNKNOWN (1ULL << 63)

/* /proc/PID/pagemap entries (the frame number needs CAP_SYS_ADMIN) */
#define PROC_PM_PFN ((1ULL << 55) - 1)
#define PROC_PM_EXCLUSIVE (1ULL << 56)
#define PROC_PM_PRESENT (1ULL << 63)
/* A fork's entry and its parent's at the same address name one page frame:
 * the page is still shared copy-on-write. */
static inline bool proc_pm_same_frame(uint64_t child, uint64_t parent)
{
	return (child & PROC_PM_PRESENT) && (parent & PROC_PM_PRESENT) && (child & PROC_PM_PFN) &&
	       (child & PROC_PM_PFN) == (parent & PROC_PM_PFN);
}

/* The mnemonic of one PROC_VMF_* bit ("rd"), or NULL. */
const char *proc_vmflag_name(uint64_t bit);
/* Format flags as the kernel does ("rd wr mr mw me ac"); returns the length or -ENOBUFS. */
int proc_vmflags_format(uint64_t flags, char *buf, size_t size);
/* Parse the text after "VmFlags:" (one line, no '\n'). */
int proc_parse_vmflags(const char *s, size_t len, uint64_t *ret_flags);

struct proc_vma {
	uint64_t start, end;	/* [start, end) */
	uint64_t pgoff;		/* byte offset into the file (0 for anon) */
	uint64_t inode;
	uint64_t vmflags;	/* PROC_VMF_*, valid if has_vmflags */
	/* smaps Shared_Clean + Shared_Dirty: resident pages that other processes
	 * map too (copy-on-write after a fork, page cache, shmem); valid if
	 * has_shared (the flags came from smaps with those lines) */
	uint64_t shared_kb;
	bool has_shared;
	uint32_t dev_major, dev_minor;
	uint8_t prot;		/* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;		/* 's' in maps: VM_MAYSHARE */
	bool deleted;		/* " (deleted)" was stripped from path */
	bool has_vmflags;
	enum proc_vma_kind kind;
	/*
	 * Never NULL: "" for ANON; the file path (with maps' "\012" decoded
	 * back to '\n') for FILE and the shmem kinds; NAME for [anon:NAME]
	 * and [anon_shmem:NAME]; the bracketed text for the other specials.
	 */
	const char *path;
};

struct proc_vma_list {
	struct proc_vma *vmas;
	size_t n;
	char *storage;		/* owns the strings the paths point into */
	char *extra;		/* more of them (names fixed by PROCMAP_QUERY) */
};
void proc_vma_list_done(struct proc_vma_list *l);

/*
 * /proc/PID/maps text.  Fast: no smaps page walk, one allocation for the array.
 * proc_read_maps() asks PROCMAP_QUERY (when the kernel has it) for the raw
 * name of each VMA whose path held "\012", so a newline and a file really
 * named with a backslash are told apart (-ESTALE if that VMA changed meanwhile).
 */
int proc_parse_maps(const char *buf, size_t len, struct proc_vma_list *ret);
int proc_read_maps(pid_t pid, struct proc_vma_list *ret);

/*
 * Is the file of a FILE VMA really unlinked?  " (deleted)" may also be part
 * of a live file's name: this stats /proc/PID/map_files/START-END (st_nlink)
 * and needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN.  1 yes, 0 no, -errno.
 */
int proc_vma_is_deleted(pid_t pid, const struct proc_vma *v);

/* /proc/PID/smaps text: the VMA headers plus VmFlags; every other line is skipped. */
int proc_parse_smaps(const char *buf, size_t len, struct proc_vma_list *ret);
int proc_read_smaps(pid_t pid, struct proc_vma_list *ret);

/*
 * Fill vmflags/has_vmflags of an existing list from smaps text (matched by
 * start and end).  The VMAs of both must be the same (a frozen process):
 * a VMA on one side only gives -ESTALE and l is left unchanged.  The
 * [vsyscall] gate area may be missing from l (PROCMAP_QUERY never reports it).
 */
int proc_parse_smaps_vmflags(const char *buf, size_t len, struct proc_vma_list *l);
int proc_read_smaps_vmflags(pid_t pid, struct proc_vma_list *l);
/* maps, then the VmFlags of each VMA from smaps (-ESTALE if they changed in
 * between); *ret is written only on success. */
int proc_read_maps_vmflags(pid_t pid, struct proc_vma_list *ret);

/*
 * The VMAs by the PROCMAP_QUERY ioctl on /proc/PID/maps (Linux >= 6.11):
 * no text formatting and no escaping (paths come back as the raw d_path,
 * so a name containing "\012" is not confused with a newline).  It does
 * not report the [vsyscall] gate area.  -EOPNOTSUPP on older kernels,
 * -EAGAIN if a VMA grew under the walk (a process that is not frozen).
 */
int proc_query_maps(pid_t pid, struct proc_vma_list *ret);

/* ------------------------------------------------------------------------ */
/* stat, status                                                              */

struct proc_stat {
	pid_t pid;
	char comm[PROC_COMM_MAX + 1];	/* raw bytes between the first '(' and the LAST ')' */
	char state;
	pid_t ppid, pgrp, session;
	int tty_nr;
	pid_t tpgid;
	unsigned int flags;		/* PF_* */
	uint64_t minflt, majflt;
	uint64_t utime, stime;		/* clock ticks */
	int64_t priority, nice;
	int64_t num_threads;
	uint64_t start_time;		/* clock ticks after boot */
	uint64_t vsize, rss;		/* bytes, pages */
	uint64_t start_code, end_code, start_stack;
	int exit_signal;
	int processor;
	unsigned int rt_priority, policy;
	uint64_t start_data, end_data, start_brk;
	uint64_t arg_start, arg_end, env_start, env_end;
	int exit_code;
};
int proc_parse_stat(const char *buf, size_t len, struct proc_stat *ret);
int proc_read_stat(pid_t pid, pid_t tid, struct proc_stat *ret);
/* How many times the thread was scheduled (schedstat's third field) and,
 * if ret_state, its state letter: whether it ran since a moment. */
int proc_read_runcount(pid_t pid, pid_t tid, uint64_t *ret, char *ret_state);

/* which fields were present in status */
enum {
	PROC_STATUS_NAME = 1u << 0,
	PROC_STATUS_UMASK = 1u << 1,
	PROC_STATUS_STATE = 1u << 2,
	PROC_STATUS_TGID = 1u << 3,
	PROC_STATUS_PID = 1u << 4,
	PROC_STATUS_PPID = 1u << 5,
	PROC_STATUS_TRACERPID = 1u << 6,
	PROC_STATUS_UID = 1u << 7,
	PROC_STATUS_GID = 1u << 8,
	PROC_STATUS_GROUPS = 1u << 9,
	PROC_STATUS_NS = 1u << 10,	/* NStgid NSpid NSpgid NSsid */
	PROC_STATUS_SIG = 1u << 11,	/* SigPnd ShdPnd SigBlk SigIgn SigCgt */
	PROC_STATUS_CAPS = 1u << 12,	/* CapInh CapPrm CapEff CapBnd CapAmb */
	PROC_STATUS_NNP = 1u << 13,
	PROC_STATUS_SECCOMP = 1u << 14,
	PROC_STATUS_SECCOMP_FILTERS = 1u << 15,
	PROC_STATUS_THREADS = 1u << 16,
	PROC_STATUS_RSS_ANON = 1u << 17,
};

struct proc_status {
	unsigned int present;		/* PROC_STATUS_* */
	char name[PROC_COMM_MAX + 1];	/* unescaped */
	mode_t umask;
	char state;
	pid_t tgid, pid, ppid, tracer_pid;
	uid_t uid[4];			/* real, effective, saved, filesystem */
	gid_t gid[4];
	gid_t *groups;			/* owned */
	size_t n_groups;
	/* ids in each PID namespace, outermost first */
	pid_t nstgid[PROC_NS_LEVELS_MAX], nspid[PROC_NS_LEVELS_MAX];
	pid_t nspgid[PROC_NS_LEVELS_MAX], nssid[PROC_NS_LEVELS_MAX];
	unsigned int n_nstgid, n_nspid, n_nspgid, n_nssid;
	uint64_t sig_pnd, shd_pnd, sig_blk, sig_ign, sig_cgt;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	int no_new_privs;
	int seccomp;			/* SECCOMP_MODE_* */
	int seccomp_filters;
	int threads;
	uint64_t rss_anon_kb;		/* RssAnon: resident private memory (a counter, no walk) */
};
void proc_status_done(struct proc_status *s);
/* Name, State, Tgid, Pid, PPid, Uid and Gid are required; other lines are optional. */
int proc_parse_status(const char *buf, size_t len, struct proc_status *ret);
int proc_read_status(pid_t pid, pid_t tid, struct proc_status *ret);

/* ------------------------------------------------------------------------ */
/* fd, fdinfo                                                                */

enum proc_fd_kind {
	PROC_FD_FILE = 0,	/* target starts with '/' */
	PROC_FD_MEMFD,		/* "/memfd:NAME (deleted)" */
	PROC_FD_PIPE,		/* pipe:[INO] */
	PROC_FD_SOCKET,		/* socket:[INO] */
	PROC_FD_ANON,		/* anon_inode:[NAME] or anon_inode:NAME */
	PROC_FD_NS,		/* net:[INO], mnt:[INO], ... (an nsfs file) */
	PROC_FD_OTHER,		/* anything else, e.g. "pidfd:[INO]" on pidfs */
};

enum proc_anon_kind {
	PROC_ANON_OTHER = 0,
	PROC_ANON_EVENTFD,
	PROC_ANON_EVENTPOLL,
	PROC_ANON_SIGNALFD,
	PROC_ANON_TIMERFD,
	PROC_ANON_INOTIFY,
	PROC_ANON_FANOTIFY,
	PROC_ANON_USERFAULTFD,
	PROC_ANON_PIDFD,
	PROC_ANON_IO_URING,
	PROC_ANON_PERF_EVENT,
	PROC_ANON_BPF,		/* bpf-map, bpf-prog, bpf_link, ... */
};

struct proc_fd {
	int fd;
	enum proc_fd_kind kind;
	enum proc_anon_kind anon;	/* PROC_FD_ANON */
	bool deleted;			/* FILE/MEMFD: " (deleted)" stripped from target */
	uint64_t ino;			/* PIPE, SOCKET, NS, OTHER with [INO] */
	const char *target;		/* readlink text, minus " (deleted)" */
	char name[32];			/* ANON: NAME; NS: "net"...; OTHER: text before ':'; else "" */
};

struct proc_fd_list {
	struct proc_fd *fds;		/* sorted by fd */
	size_t n;
	char *storage;
};
void proc_fd_list_done(struct proc_fd_list *l);
/*
 * Classify one readlink target: fills everything but fd (-1); target[len]
 * must be writable (it gets the NUL), ret->target points to target.
 */
int proc_classify_fd_target(char *target, size_t len, struct proc_fd *ret);
int proc_read_fds(pid_t pid, struct proc_fd_list *ret);

struct proc_kv {
	const char *key;
	const char *val;
};

struct proc_fdinfo {
	int64_t pos;
	unsigned int flags;	/* O_* in octal in the file, O_CLOEXEC included */
	int mnt_id;
	uint64_t ino;		/* 0 if the kernel does not print it */
	/*
	 * Every other line, in order: key is the text before the first ':'
	 * ("eventfd-count", "tfd", "settime flags", "lock"...), except for
	 * "inotify ..." and "fanotify ..." lines whose key is that first word;
	 * val is the rest with leading blanks removed.
	 */
	struct proc_kv *kv;
	size_t n_kv;
	char *storage;
};
void proc_fdinfo_done(struct proc_fdinfo *fi);
int proc_parse_fdinfo(const char *buf, size_t len, struct proc_fdinfo *ret);
int proc_read_fdinfo(pid_t pid, int fd, struct proc_fdinfo *ret);
/* The value of the first line with this key, or NULL. */
const char *proc_fdinfo_get(const struct proc_fdinfo *fi, const char *key);

/* Typed readers of the type-specific lines.  -ENOENT if the lines are absent. */
struct proc_eventfd {
	uint64_t count;
	bool semaphore;
	int64_t id;		/* -1 if absent */
};
int proc_fdinfo_eventfd(const struct proc_fdinfo *fi, struct proc_eventfd *ret);

int proc_fdinfo_signalfd(const struct proc_fdinfo *fi, uint64_t *ret_sigmask);

struct proc_timerfd {
	int clockid;
	uint64_t ticks;
	unsigned int settime_flags;
	uint64_t value_sec, value_nsec;
	uint64_t interval_sec, interval_nsec;
};
int proc_fdinfo_timerfd(const struct proc_fdinfo *fi, struct proc_timerfd *ret);

struct proc_epoll_tfd {
	int fd;
	uint32_t events;
	uint64_t data;
	int64_t pos;
	uint64_t ino;
	uint32_t sdev;
};
/* All "tfd:" lines; returns the count, *ret is malloc'ed (NULL if none). */
int proc_fdinfo_epoll(const struct proc_fdinfo *fi, struct proc_epoll_tfd **ret, size_t *ret_n);

struct proc_inotify_wd {
	int wd;
	uint64_t ino;
	uint32_t sdev;
	uint32_t mask, ignored_mask;
	const char *fhandle;	/* "fhandle-bytes:... f_handle:..." or NULL; points into fi */
};
int proc_fdinfo_inotify(const struct proc_fdinfo *fi, struct proc_inotify_wd **ret, size_t *ret_n);

/*
 * "lock:" lines: the locks this fd's open file description holds, as the
 * kernel lists them for this fd (a POSIX lock only when this process owns it
 * and took it through this description; an OFD or flock lock for every fd of
 * the description).
 */
enum proc_lock_kind {
	PROC_LOCK_POSIX = 0,	/* fcntl F_SETLK: owned by the process (its fd table) */
	PROC_LOCK_OFD,		/* fcntl F_OFD_SETLK: owned by the open file description */
	PROC_LOCK_FLOCK,	/* flock(): owned by the open file description */
	PROC_LOCK_OTHER,	/* LEASE, DELEG, ACCESS, ...: only name is set */
};
struct proc_lock {
	enum proc_lock_kind kind;
	char name[16];		/* the kernel's word for the kind: "POSIX", "OFDLCK", "LEASE"... */
	bool write;		/* WRITE; else READ */
	int pid;		/* owner as the kernel shows it (-1 for OFD locks) */
	uint64_t start;
	uint64_t end;		/* inclusive; UINT64_MAX for "EOF" (to the end of the file) */
};
/* All "lock:" lines; returns the count, *ret is malloc'ed (NULL if none). */
int proc_fdinfo_locks(const struct proc_fdinfo *fi, struct proc_lock **ret, size_t *ret_n);

/* ------------------------------------------------------------------------ */
/* threads, children, timers                                                 */

/* TIDs of /proc/PID/task, sorted.  *ret is malloc'ed. */
int proc_read_tasks(pid_t pid, pid_t **ret, size_t *ret_n);
/*
 * The stack pointer of a thread that is blocked (/proc/PID/task/TID/syscall:
 * in a system call or not): 1 and *ret_sp; 0 if it is running (its stack
 * pointer moves); -errno.  The parser alone for tests.
 */
int proc_read_blocked_sp(pid_t pid, pid_t tid, uint64_t *ret_sp);
int proc_parse_syscall_sp(const char *buf, size_t len, uint64_t *ret_sp);
/* /proc/PID/task/TID/children: "123 456 " */
int proc_parse_pid_list(const char *buf, size_t len, pid_t **ret, size_t *ret_n);
int proc_read_children(pid_t pid, pid_t tid, pid_t **ret, size_t *ret_n);

struct proc_timer {
	int id;
	int signo;
	uint64_t sigval;	/* sival_ptr as printed (%px) */
	int notify;		/* SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD */
	bool thread_id;		/* SIGEV_THREAD_ID: notify_pid is a tid */
	pid_t notify_pid;
	int clock_id;
};
int proc_parse_timers(const char *buf, size_t len, struct proc_timer **ret, size_t *ret_n);
int proc_read_timers(pid_t pid, struct proc_timer **ret, size_t *ret_n);

/* ------------------------------------------------------------------------ */
/* mountinfo                                                                 */

struct proc_mount {
	int mnt_id, parent_id;
	uint32_t major, minor;
	const char *root;		/* octal escapes decoded */
	const char *mountpoint;
	const char *options;		/* per-mount options */
	const char *fstype;
	const char *source;
	const char *super_options;
	int shared;			/* peer group, 0 if none */
	int master;			/* 0 if none */
	int propagate_from;		/* 0 if none */
	bool unbindable;
};
struct proc_mount_list {
	struct proc_mount *mounts;
	size_t n;
	char *storage;
};
void proc_mount_list_done(struct proc_mount_list *l);
int proc_parse_mountinfo(const char *buf, size_t len, struct proc_mount_list *ret);
int proc_read_mountinfo(pid_t pid, struct proc_mount_list *ret);

/* ------------------------------------------------------------------------ */
/* small files                                                               */

int proc_parse_personality(const char *buf, size_t len, unsigned int *ret);
int proc_read_personality(pid_t pid, unsigned int *ret);
/* A file of /proc/PID holding one decimal number: oom_score_adj, loginuid ... */
int proc_parse_s64(const char *buf, size_t len, int64_t *ret);
int proc_read_s64(pid_t pid, const char *name, int64_t *ret);
/* /proc/PID/task/TID/syscall: the syscall a blocked thread is in (-1: none,
 * -2: running) and its first argument. */
int proc_parse_syscall(const char *buf, size_t len, long *ret_nr, uint64_t *ret_arg1);
int proc_read_syscall(pid_t pid, pid_t tid, long *ret_nr, uint64_t *ret_arg1);

/* /proc/PID/comm: raw bytes minus the final '\n' (comm may hold any byte but NUL) */
int proc_parse_comm(const char *buf, size_t len, char ret[PROC_COMM_MAX + 1]);
int proc_read_comm(pid_t pid, pid_t tid, char ret[PROC_COMM_MAX + 1]);

/*
 * NUL separated strings (cmdline, environ).  ret->v[0..n-1] point into
 * ret->storage; v[n] is NULL.  A last string without its NUL (a process
 * may overwrite its own argv area) still counts.
 */
struct proc_strv {
	char **v;
	size_t n;
	char *storage;
	size_t size;		/* bytes of the raw file */
};
void proc_strv_done(struct proc_strv *s);
int proc_parse_strv(const char *buf, size_t len, struct proc_strv *ret);
int proc_read_cmdline(pid_t pid, struct proc_strv *ret);
int proc_read_environ(pid_t pid, struct proc_strv *ret);

/* auxv: (type, value) pairs up to and without AT_NULL */
struct proc_auxv_entry {
	uint64_t type, val;
};
int proc_parse_auxv(const void *buf, size_t len, struct proc_auxv_entry **ret, size_t *ret_n);
int proc_read_auxv(pid_t pid, struct proc_auxv_entry **ret, size_t *ret_n);

/* Namespaces: inode numbers of /proc/PID/ns/NAME, 0 for the ones this kernel lacks. */
enum proc_ns_type {
	PROC_NS_CGROUP,
	PROC_NS_IPC,
	PROC_NS_MNT,
	PROC_NS_NET,
	PROC_NS_PID,
	PROC_NS_PID_FOR_CHILDREN,
	PROC_NS_TIME,
	PROC_NS_TIME_FOR_CHILDREN,
	PROC_NS_USER,
	PROC_NS_UTS,
	PROC_NS_COUNT
};
const char *proc_ns_name(enum proc_ns_type t);
struct proc_ns {
	uint64_t ino[PROC_NS_COUNT];
};
/* "net:[4026531833]" -> 4026531833, checking the type name */
int proc_parse_ns_link(const char *link, size_t len, const char *type, uint64_t *ret_ino);
int proc_read_ns(pid_t pid, enum proc_ns_type t, uint64_t *ret_ino);
/* the same for one thread (namespaces are per thread: setns, unshare) */
int proc_read_thread_ns(pid_t pid, pid_t tid, enum proc_ns_type t, uint64_t *ret_ino);
/* The same from an open /proc/PID[/task/TID]/ns directory (proc_open_ns_dir):
 * one path walk for all the types of a thread. */
int proc_open_ns_dir(pid_t pid, pid_t tid, int *ret_fd);
int proc_read_ns_at(int dirfd, enum proc_ns_type t, uint64_t *ret_ino);
int proc_read_all_ns(pid_t pid, struct proc_ns *ret);

struct proc_cgroup {
	unsigned int hier_id;		/* 0 for the v2 unified hierarchy */
	const char *controllers;	/* "cpu,cpuacct", "name=systemd", "" for v2 */
	const char *path;		/* may contain ':' */
};
struct proc_cgroup_list {
	struct proc_cgroup *cg;
	size_t n;
	char *storage;
};
void proc_cgroup_list_done(struct proc_cgroup_list *l);
int proc_parse_cgroup(const char *buf, size_t len, struct proc_cgroup_list *ret);
int proc_read_cgroup(pid_t pid, struct proc_cgroup_list *ret);

/* ------------------------------------------------------------------------ */
/* system-wide                                                               */

/* The aggregate "cpu" line of /proc/stat, in clock ticks. */
struct proc_cpu_times {
	uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
	unsigned int ncpu;		/* number of "cpuN" lines */
};
/* busy = total - idle - iowait; guest time is already inside user/nice */
static inline uint64_t proc_cpu_total(const struct proc_cpu_times *t)
{
	return t->user + t->nice + t->system + t->idle + t->iowait + t->irq + t->softirq + t->steal;
}
static inline uint64_t proc_cpu_busy(const struct proc_cpu_times *t)
{
	return proc_cpu_total(t) - t->idle - t->iowait;
}
int proc_parse_cpu_times(const char *buf, size_t len, struct proc_cpu_times *ret);
int proc_read_cpu_times(struct proc_cpu_times *ret);

struct proc_meminfo {
	uint64_t mem_total;	/* bytes */
	uint64_t mem_free;
	uint64_t mem_available;
};
int proc_parse_meminfo(const char *buf, size_t len, struct proc_meminfo *ret);
int proc_read_meminfo(struct proc_meminfo *ret);

/* ------------------------------------------------------------------------ */
/* Read a whole /proc file (any file, in fact) into a NUL-terminated buffer.  */
/* ---- process trees ---- */
/* root and its descendants as /proc/PID/task/TID/children tell them, parents
 * first (a snapshot: it may change meanwhile); *ret malloc'd; at most 65536. */
size_t proc_tree_pids(pid_t root, pid_t **ret);
/* Stop the tree (so that it cannot fork away), then SIGKILL every process. */
void proc_kill_tree(pid_t root);

/* ---- /proc/PID/pagemap (PAGEMAP_SCAN) ---- */
struct proc_range {
	uint64_t start, end;
};
/*
 * How much of an address space one PAGEMAP_SCAN ioctl walks at most (of its
 * data, in proc_pagemap_data_runs(): its max_pages, since a span of VMAs
 * crosses the gaps between them).  The walk holds the process's mmap lock
 * throughout (its mmap()s and munmap()s wait, and its page faults behind
 * them), and on a kernel without preemption it keeps its CPU until it
 * returns: a run of present pages is one region of the output, so one call
 * went over a whole 1.3 GiB heap (~100 ms protecting it, 3-4 ms reading it).
 * 32 MiB is a few ms at worst.
 */
#define PROC_SCAN_CHUNK_BYTES (32ULL << 20)
/*
 * The runs of [start, end) (page aligned, inside one VMA or not) that hold
 * private anonymous data: present or swapped, not page cache, not the zero
 * page, not a guard marker.  Adjacent runs are merged.  *runs grows as needed (*cap its size);
 * the result is in (*runs)[0 .. *ret_n).
 */
int proc_pagemap_data_runs(int pagemap_fd, uint64_t start, uint64_t end, struct proc_range **runs,
			   size_t *cap, size_t *ret_n);
/* The runs of [start, end) that are guard regions (MADV_GUARD_INSTALL); none on old kernels. */
int proc_pagemap_guard_runs(int pagemap_fd, uint64_t start, uint64_t end, struct proc_range **runs,
			    size_t *cap, size_t *ret_n);

int proc_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);
