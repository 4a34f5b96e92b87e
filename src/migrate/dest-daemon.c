/* SPDX-License-Identifier: MIT */
/*
 * dmigrated, the daemon that receives migrations (dest.c: one of them):
 *
 *   main thread     accept loop (the TLS + Hello of each connection run on a
 *                   thread of their own, net_accept_next), then by role:
 *                   control -> a new session on its own thread (up to
 *                   MIG_SESSIONS_MAX at once, each failing alone; "busy" else),
 *                   fault/bulk -> the session whose id they carry
 *
 * and what the sessions leave to it: the roots it reaps, the cgroups and
 * the copies of the files of the trees that run here, removed once those
 * are gone; at its start, what a daemon killed before it could clean up
 * left behind (incoming images, tree cgroups, dead views, containers made
 * at START).
 */
#define LOG_PREFIX "dmigrated: "
#include "migrate/dest-int.h"
#include "base/log.h"
#include "proc/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

/* ---- the daemon ---------------------------------------------------------- */

static _Atomic bool daemon_stop;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&daemon_stop, true);
}

/*
 * Restored roots are children of the daemon (the restorer forked them).
 * They are reaped here by pid, never with waitpid(-1): the restore engine
 * waits for its own tracees and must not lose their statuses.
 */
static pid_t *roots;
static size_t n_roots;
/* cgroups of migrated trees that run here: removed once empty */
static struct treecg *cgs;
static size_t n_cgs;
/* the copies of the files of trees that run here, and their lazy views:
 * unmounted and removed once the tree is gone (its cgroup empty; without
 * one, its root reaped) */
struct kept_rootfs {
	struct treecg cg;
	pid_t root;
	struct rfs_view *view;
	char *dir;
};
static struct kept_rootfs *kept;
static size_t n_kept;

static void sweep_cgroups(void)
{
	for (size_t i = 0; i < n_cgs;) {
		if (!treecg_populated(&cgs[i]) && treecg_remove(&cgs[i]) == 0) {
			cgs[i] = cgs[--n_cgs];
			continue;
		}
		i++;
	}
}

static void drop_kept(struct kept_rootfs *k)
{
	rfs_view_free(k->view);
	rm_rf(k->dir);
	free(k->dir);
}

/*
 * A daemon that was killed left copies behind: those of migrations that
 * never committed (their trees were killed by the guardians), and the lazy
 * views of committed trees, mounted but dead (the trees see ENOTCONN).
 * Those are unmounted and removed.  A committed eager copy (no view) may
 * still be a running tree's root: it stays.
 */

static void sweep_stale_views(const struct mig_daemon_opts *o)
{
	_cleanup_free_ char *base = xasprintf("%s/rootfs", o->state_dir ? o->state_dir : "/var/lib/dmigrate");
	_cleanup_closedir_ DIR *d = opendir(base);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *mnt = xasprintf("%s/%s/root", base, de->d_name);
		_cleanup_free_ char *committed = xasprintf("%s/%s/committed", base, de->d_name);
		struct stat st;
		bool dead = stat(mnt, &st) < 0 && errno == ENOTCONN;
		if (!dead && access(committed, F_OK) == 0)
			continue;
		if (dead && umount2(mnt, MNT_DETACH) < 0)
			pr_warn("%s: a dead view of a former dmigrated: umount: %m", mnt);
		_cleanup_free_ char *dir = xasprintf("%s/%s", base, de->d_name);
		pr_info("removing %s: %s", dir, dead ? "its view died with a former dmigrated" :
						       "its migration never committed");
		rm_rf(dir);
	}
}

static void sweep_rootfs(void)
{
	for (size_t i = 0; i < n_kept;) {
		struct kept_rootfs *k = &kept[i];
		bool gone = k->cg.version != TREECG_NONE ? !treecg_populated(&k->cg)
							 : kill(k->root, 0) < 0 && errno == ESRCH;
		if (gone) {
			drop_kept(k);
			kept[i] = kept[--n_kept];
			continue;
		}
		i++;
	}
}

static void reap_roots(void)
{
	for (size_t i = 0; i < n_roots;) {
		pid_t w = waitpid(roots[i], NULL, WNOHANG | __WALL);
		if (w == roots[i] || (w < 0 && errno == ECHILD)) {
			roots[i] = roots[--n_roots];
			continue;
		}
		i++;
	}
}

static void free_session(struct dsess *s)
{
	pthread_join(s->thread, NULL);
	if (s->keep_root && s->root > 0) {
		roots = xrealloc(roots, (n_roots + 1) * sizeof(*roots));
		roots[n_roots++] = s->root;
	}
	if (s->keep_root && s->cg.version != TREECG_NONE) {
		cgs = xrealloc(cgs, (n_cgs + 1) * sizeof(*cgs));
		cgs[n_cgs++] = s->cg;
	} else if (s->cg.version != TREECG_NONE) {
		/* the guardian removed it after the kill; a tree that never got that far left it empty */
		treecg_remove(&s->cg);
	}
	if (s->keep_root && s->rfs_root) {
		kept = xrealloc(kept, (n_kept + 1) * sizeof(*kept));
		kept[n_kept++] = (struct kept_rootfs){ .cg = s->cg, .root = s->root, .view = s->view,
						       .dir = s->rfs_root };
		s->view = NULL;
		s->rfs_root = NULL;
	}
	net_chan_close(s->fault);
	net_chan_close(s->bulk);
	net_chan_close(s->rfs_chan);
	net_chan_close(s->rfs_miss);
	for (size_t i = 0; i < MIG_VOLUME_TREES_MAX; i++) {
		net_chan_close(s->vol_chan[i]);
		net_chan_close(s->vol_miss[i]);
	}
	for (size_t i = 0; i < 2 * MIG_VOLUME_TREES_MAX; i++)
		net_chan_close(s->vol_in[i]);
	for (size_t i = 0; i < MIG_VOLUME_TREES_MAX; i++)
		free(s->vol_name[i]);
	net_chan_close(s->ctl);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->guard_lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

static void refuse(struct net_chan *c, const char *why)
{
	mig_send_reply(c, MIG_T_ABORT, false, -EBUSY, why, 0, NULL);
	net_chan_close(c);
}

/*
 * The images being received, in memory: a tmpfs on STATE_DIR/incoming.
 * On a disk's file system (ext4 here) creating and writing a redis
 * container's few image files took 0.3-0.5 ms of the downtime, between
 * the state's last frame and the restore.  At most a quarter of the RAM
 * (what a state holds beside the tree's memory: a container's tmpfs files,
 * its IPC objects; an image file that does not fit fails its migration
 * before the switch-over, named, dest.c).  The daemon mounts one unless
 * its own (source INCOMING_FS) is there already, left by a killed daemon,
 * which it takes, or another tmpfs; it unmounts its own when it ends.  With --keep-images (kept
 * past the daemon) or without the right to mount, the directory's own
 * file system.  Returns the directory to unmount, or NULL.
 */
#define INCOMING_FS "dmigrate-incoming"

static bool incoming_is_ours(const char *dir)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list ml = { 0 };
	_cleanup_free_ char *real = realpath(dir, NULL);
	bool ours = false;

	if (!real || proc_read_mountinfo(PROC_SELF, &ml) < 0) {
		dm_error_clear();
		return false;
	}
	/* the last mount on it is the one seen there */
	for (size_t i = 0; i < ml.n; i++)
		if (!strcmp(ml.mounts[i].mountpoint, real))
			ours = !strcmp(ml.mounts[i].fstype, "tmpfs") && !strcmp(ml.mounts[i].source, INCOMING_FS);
	return ours;
}

static char *incoming_mount(const char *dir, bool keep_images)
{
	bool ours = mkdir_p(dir, 0700) >= 0 && incoming_is_ours(dir);

	if (keep_images) {
		/* kept past the daemon: on the disk */
		if (ours && umount2(dir, MNT_DETACH) < 0)
			pr_warn("%s: unmounting the images' tmpfs: %m", dir);
		return NULL;
	}
	if (ours)
		return xstrdup(dir);
	struct statfs sf;
	if (statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
		return NULL; /* in memory already (someone else's) */
	if (mount(INCOMING_FS, dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=25%") < 0) {
		pr_info("%s: no tmpfs mounted there (%m): images are received on its own file system", dir);
		return NULL;
	}
	return xstrdup(dir);
}

static void incoming_unmount(char **dir)
{
	if (*dir && umount2(*dir, MNT_DETACH) < 0)
		pr_warn("%s: unmounting the images' tmpfs: %m", *dir);
	free(*dir);
}

int mig_daemon_run(const struct mig_daemon_opts *o)
{
	_cleanup_net_ctx_ struct net_ctx *ctx = NULL;
	_cleanup_net_listener_ struct net_listener *l = NULL;
	struct net_config cfg = { .insecure = o->insecure, .io_timeout_ms = -1 };
	/* the migrations in progress, each on its own thread */
	struct dsess *sess[MIG_SESSIONS_MAX];
	size_t n_sess = 0;
	unsigned done = 0;
	int r;

	r = net_ctx_new(&cfg, o->key, &ctx);
	if (r < 0)
		return r;
	/* what a daemon killed before it could clean up left behind (one daemon per state dir) */
	_cleanup_free_ char *incoming = xasprintf("%s/incoming", o->state_dir ? o->state_dir : "/var/lib/dmigrate");
	if (!o->keep_images)
		rm_rf(incoming);
	_cleanup_(incoming_unmount) char *incoming_mounted = incoming_mount(incoming, o->keep_images);
	/* empty tree cgroups a dead daemon left; ten minutes old at least, so
	 * that another daemon's just made one is never taken (test hosts share
	 * the hierarchy) */
	treecg_sweep_stale(600);
	sweep_stale_views(o);
	sweep_early(o);
	r = net_listen(ctx, o->listen, &l);
	if (r < 0)
		return r;
	/*
	 * Signals are blocked and read from a signalfd, never handled: restored
	 * processes are forked from us, and whatever dispositions we changed
	 * they would inherit where their image says "default".  The mask is
	 * theirs again at the end of the restore.
	 */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	sigdelset(&ss, SIGPIPE);
	_cleanup_close_ int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	pr_info("listening on %s (port %u)%s", o->listen ? o->listen : "127.0.0.1:7070", net_listener_port(l),
		o->insecure ? ", INSECURE" : "");
	if (o->ready_file) {
		_cleanup_free_ char *txt = xasprintf("%u\n", net_listener_port(l));
		_cleanup_free_ char *tmp = xasprintf("%s.tmp", o->ready_file);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			write_all(fd, txt, strlen(txt));
			close(fd);
			rename(tmp, o->ready_file);
		}
	}
	while (!atomic_load(&daemon_stop) || n_sess) {
		struct net_chan *c = NULL;
		for (size_t i = 0; i < n_sess;) {
			if (!atomic_load(&sess[i]->finished)) {
				i++;
				continue;
			}
			free_session(sess[i]);
			sess[i] = sess[--n_sess];
			done++;
		}
		if (o->max_migrations && done >= o->max_migrations && !n_sess)
			break;
		reap_roots();
		sweep_rootfs();
		sweep_cgroups();
		struct signalfd_siginfo si;
		if (sfd >= 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal((int)si.ssi_signo);
		/* handshakes run on threads of their own (a silent client holds
		 * only its own connection), within per-address and global limits */
		r = net_accept_next(l, 200, &c);
		if (r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r < 0) {
			pr_warn("accepting connections: %s", dm_last_error()[0] ? dm_last_error() : strerror(-r));
			continue;
		}
		enum net_role role = net_chan_role(c);
		struct dsess *cur = NULL;
		for (size_t i = 0; i < n_sess && !cur; i++)
			if (!memcmp(net_chan_session(c), sess[i]->session, NET_SESSION_LEN))
				cur = sess[i];
		if (role == NET_ROLE_CONTROL) {
			/* (the listener refuses a control channel whose session is in use) */
			if (n_sess >= MIG_SESSIONS_MAX) {
				char why[64];
				snprintf(why, sizeof(why), "busy: %d migrations are in progress", MIG_SESSIONS_MAX);
				refuse(c, why);
				continue;
			}
			if (o->max_migrations && done + n_sess >= o->max_migrations) {
				refuse(c, "busy with its last migration");
				continue;
			}
			if (atomic_load(&daemon_stop)) {
				refuse(c, "shutting down");
				continue;
			}
			cur = xcalloc(1, sizeof(*cur));
			cur->o = o;
			cur->ctl = c;
			cur->root_pidfd = -1;
			cur->guard_fd = -1;
			cur->runc_early = (struct runc_started){ .sock = -1, .root_fd = -1 };
			memcpy(cur->session, net_chan_session(c), NET_SESSION_LEN);
			net_session_hex(cur->session, cur->hex);
			pthread_mutex_init(&cur->lock, NULL);
			pthread_mutex_init(&cur->guard_lock, NULL);
			pthread_cond_init(&cur->cond, NULL);
			mig_tune_chan(c, true);
			r = -pthread_create(&cur->thread, NULL, session_thread, cur);
			if (r < 0) {
				refuse(c, "cannot start a thread");
				pthread_mutex_destroy(&cur->lock);
				pthread_mutex_destroy(&cur->guard_lock);
				pthread_cond_destroy(&cur->cond);
				free(cur);
				continue;
			}
			pthread_setname_np(cur->thread, "dm-session");
			sess[n_sess++] = cur;
			continue;
		}
		if ((role == NET_ROLE_VOLUME || role == NET_ROLE_VOLUME_MISS) && cur) {
			/* (which volume: its first frame says, read by the session) */
			pthread_mutex_lock(&cur->lock);
			if (cur->n_vol_in < 2 * cur->n_vol) {
				cur->vol_in[cur->n_vol_in++] = c;
				c = NULL;
				pthread_cond_broadcast(&cur->cond);
			}
			pthread_mutex_unlock(&cur->lock);
		}
		if ((role == NET_ROLE_FAULT || role == NET_ROLE_BULK || role == NET_ROLE_ROOTFS ||
		     role == NET_ROLE_ROOTFS_MISS) && cur) {
			pthread_mutex_lock(&cur->lock);
			struct net_chan **slot = role == NET_ROLE_FAULT	 ? &cur->fault :
						 role == NET_ROLE_BULK	 ? &cur->bulk :
						 role == NET_ROLE_ROOTFS ? &cur->rfs_chan :
									   &cur->rfs_miss;
			if (!*slot) {
				*slot = c;
				c = NULL;
				pthread_cond_broadcast(&cur->cond);
			}
			pthread_mutex_unlock(&cur->lock);
		}
		if (c) {
			pr_warn("closing a %s channel that belongs to no migration", net_role_name(role));
			net_chan_close(c);
		}
	}
	for (size_t i = 0; i < n_sess; i++)
		free_session(sess[i]);
	/* the lazy views end with us: a tree still running on one gets ENOTCONN */
	for (size_t i = 0; i < n_kept; i++) {
		if (kept[i].view)
			pr_warn("the files of the tree of pid %d are no longer served", kept[i].root);
		rfs_view_free(kept[i].view);
		free(kept[i].dir);
	}
	n_kept = 0;
	return 0;
}
