/* SPDX-License-Identifier: MIT */
/*
 * The source's --stats: one JSON object of what a migration did and where
 * its time went (docs/migration.md, "Stats"), made once at the end, from
 * the session (struct src) and the page server's counters.
 */
#define LOG_PREFIX "migrate: "
#include "migrate/source-int.h"
#include "base/clock.h"

#include <inttypes.h>
#include <string.h>

json_t *src_build_stats(struct src *s, int err)
{
	json_t *j = json_object(), *ts = json_object(), *lat = json_object();
	struct mem_server_stats ss = {};

	if (s->srv)
		mem_server_get_stats(s->srv, &ss);
	json_object_set_new(j, "mode", json_string(mig_mode_name(s->o->mode)));
	_cleanup_free_ char *target = xasprintf("pid:%d", s->o->pid);
	json_object_set_new(j, "target", json_string(target));
	json_object_set_new(j, "to", json_string(s->o->to));
	json_object_set_new(j, "ok", json_boolean(err == 0));
	if (err)
		json_object_set_new(j, "error", json_string(dm_last_error()[0] ? dm_last_error() : strerror(-err)));
	json_object_set_new(j, "switched", json_boolean(s->committed));
	json_object_set_new(j, "secure", json_boolean(!s->o->insecure));
	json_object_set_new(ts, "start", json_real(0));
	json_object_set_new(j, "start_unix", json_real(s->t0_wall.tv_sec + s->t0_wall.tv_nsec / 1e9));
	/* CLOCK_MONOTONIC at the start: places the destination's times (its
	 * restore's start_mono_ms) on this timeline when both run on one machine */
	json_object_set_new(j, "start_mono_ms", json_real(s->t0 / 1e6));
	json_object_set_new(ts, "freeze", json_real(src_ms_since(s, s->t_freeze)));
	json_object_set_new(ts, "dumped", json_real(src_ms_since(s, s->t_dumped)));
	if (s->t_connected)
		json_object_set_new(ts, "connected", json_real(src_ms_since(s, s->t_connected)));
	if (s->t_ready)
		json_object_set_new(ts, "ready", json_real(src_ms_since(s, s->t_ready)));
	if (s->t_presend)
		json_object_set_new(ts, "presend", json_real(src_ms_since(s, s->t_presend)));
	json_object_set_new(ts, "state_sent", json_real(src_ms_since(s, s->t_state)));
	json_object_set_new(ts, "resume", json_real(src_ms_since(s, s->t_resume)));
	if (s->t_commit)
		json_object_set_new(ts, "commit", json_real(src_ms_since(s, s->t_commit)));
	if (s->t_committed)
		json_object_set_new(ts, "committed", json_real(src_ms_since(s, s->t_committed)));
	if (s->t_push)
		json_object_set_new(ts, "push", json_real(src_ms_since(s, s->t_push)));
	json_object_set_new(ts, "done", json_real(src_ms_since(s, s->t_done)));
	json_object_set_new(j, "timestamps", ts);
	json_object_set_new(j, "downtime_ms",
			    s->t_freeze && s->t_resume ? json_real(ns_to_ms(s->t_freeze, s->t_resume)) : json_null());
	json_object_set_new(j, "total_ms", s->t_done ? json_real(ns_to_ms(s->t0, s->t_done)) : json_null());
	json_object_set_new(j, "bytes", mig_bytes_json(s->ctl, s->fault, s->bulk));
	if (s->rfs_chan) {
		json_t *b = json_object_get(j, "bytes");
		uint64_t rb = mig_chan_bytes(s->rfs_chan) + mig_chan_bytes(s->rfs_miss);
		json_object_set_new(b, "rootfs", json_integer((json_int_t)rb));
		json_object_set_new(b, "total", json_integer(json_integer_value(json_object_get(b, "total")) + (json_int_t)rb));
	}
	if (s->n_vol) {
		json_t *b = json_object_get(j, "bytes");
		uint64_t vb = 0;
		for (size_t i = 0; i < s->n_vol; i++)
			vb += mig_chan_bytes(s->vol_chan[i]) + mig_chan_bytes(s->vol_miss[i]);
		json_object_set_new(b, "volumes", json_integer((json_int_t)vb));
		json_object_set_new(b, "total", json_integer(json_integer_value(json_object_get(b, "total")) + (json_int_t)vb));
	}
	if (s->rfs)
		json_object_set_new(j, "rootfs", rfs_send_stats(s->rfs, s->t0));
	if (s->o->n_volumes) {
		/* a Docker container's volumes: as trees before the freeze, or
		 * (an older destination) as tars in the freeze */
		json_t *vs = json_array();
		for (size_t i = 0; i < s->n_vol; i++) {
			json_t *v = s->vol[i] ? rfs_send_stats(s->vol[i], s->t0) : json_object();
			json_object_set_new(v, "name", json_string(s->o->volumes[i].name));
			json_object_set_new(v, "bytes_wire",
					    json_integer((json_int_t)(mig_chan_bytes(s->vol_chan[i]) + mig_chan_bytes(s->vol_miss[i]))));
			json_array_append_new(vs, v);
		}
		json_object_set_new(j, "volumes", json_pack("{s:b, s:o}", "trees", s->n_vol > 0, "list", vs));
	}
	else if (s->o->rootfs_dir && s->o->rootfs_mode == RFS_NONE)
		json_object_set_new(j, "rootfs", json_pack("{s:s}", "mode", "none"));
	if (s->image_stats)
		json_object_set(j, "image", s->image_stats);
	if (s->o->container_record)
		json_object_set_new(j, "container_record_ms", json_real(s->container_record_ms));
	if (s->rec.joined) {
		/* beside the dump: its time, and how long the dump waited for it */
		json_object_set_new(j, "container_record_beside_ms", json_real(s->container_record_beside_ms));
		json_object_set_new(j, "container_record_wait_ms", json_real(s->container_record_wait_ms));
	}
	if (s->o->container_record_stats && (s->rec.joined || !s->rec.started) && s->container_record_ms > 0)
		json_object_set_new(j, "container_record", s->o->container_record_stats(s->o->container_arg));
	if (s->server_load_ms > 0) {
		json_object_set_new(j, "server_load_ms", json_real(s->server_load_ms));
		json_object_set_new(j, "server_add_ms", json_real(s->server_add_ms));
	}
	if (s->state_send_ms > 0)
		json_object_set_new(j, "state_send_ms", json_real(s->state_send_ms));
	if (s->frozen_scan_ms > 0)
		/* the pages written since they went before the freeze, found in it */
		json_object_set_new(j, "frozen_scan_ms", json_real(s->frozen_scan_ms));
	json_object_set_new(j, "state_bytes", json_integer((json_int_t)s->state_bytes));
	json_object_set_new(j, "state_files", json_integer((json_int_t)s->state_files));
	json_object_set_new(j, "pages_total", json_integer((json_int_t)ss.pages_total));
	if (s->ns_check_ms > 0)
		/* the threads' namespaces, checked while the destination restored */
		json_object_set_new(j, "ns_check_ms", json_real(s->ns_check_ms));
	if (s->vma_check_ms > 0) {
		json_object_set_new(j, "vma_check_ms", json_real(s->vma_check_ms));
		json_object_set_new(j, "vma_fixes", json_integer((json_int_t)s->vma_fixes));
	}
	if (ss.pages_absent || ss.scan_ms > 0) {
		/* holes of the runs whose page map was read after the resume */
		json_object_set_new(j, "pages_absent", json_integer((json_int_t)ss.pages_absent));
		json_object_set_new(j, "pagemap_scan_ms", json_real(ss.scan_ms));
	}
	/* sent after a faulting page: the words around the fault pointed to them */
	json_object_set_new(j, "pages_chased", json_integer((json_int_t)ss.pages_chased));
	/* faults on a page seen pointed to from an array: its next words followed */
	json_object_set_new(j, "chases_continued", json_integer((json_int_t)ss.chases_on));
	json_object_set_new(j, "fault_yields", json_integer((json_int_t)ss.fault_yields));
	json_object_set_new(j, "fault_paced", json_integer((json_int_t)ss.fault_paced));
	json_object_set_new(j, "fault_pace_gaveup", json_integer((json_int_t)ss.fault_pace_gaveup));
	if (s->hot_tried)
		json_object_set_new(j, "working_set",
				    json_pack("{s:b,s:f,s:f,s:f,s:I,s:I,s:I}", "tracked", s->hot != NULL, "track_ms",
					      s->hot_track_ms, "attach_ms", s->hot_attach_ms, "scan_ms", s->hot_scan_ms, "pages",
					      (json_int_t)s->hot_pages, "given", (json_int_t)ss.hot_given, "pushed_first",
					      (json_int_t)ss.pages_hot));
	if (s->t_commit)
		/* after the commit, the source served faults only so long */
		json_object_set_new(j, "quiet_ms", json_real(s->quiet_ms));
	if (s->push_held)
		/* pushed while the destination restored (the working set and what
		 * came before it), the rest waited for the commit */
		json_object_set_new(j, "pushed_early", json_integer((json_int_t)ss.pages_before_hold));
	if (s->eager_store)
		/* the pages sent before the freeze (eager ones, and lazy ones while
		 * the destination started the container), those written after */
		json_object_set_new(j, "eager_presend",
				    json_pack("{s:I,s:I,s:I,s:I,s:I,s:b,s:f,s:I,s:f}", "pages", (json_int_t)s->presend_pages,
					      "lazy_pages", (json_int_t)s->presend_lazy_pages, "stack_pages",
					      (json_int_t)s->presend_stack_pages, "shared_pages",
					      (json_int_t)s->presend_shared_pages, "written_after",
					      (json_int_t)s->presend_written, "cut_at_ready", s->presend_cut, "ms",
					      s->presend_ms, "in_flight_bytes", (json_int_t)s->presend_in_flight,
					      "drain_ms", s->presend_drain_ms));
	json_object_set_new(j, "pages_precopy", json_integer((json_int_t)s->precopy_pages));
	if (s->egress.ifname[0])
		json_object_set_new(j, "link_queue",
				    json_pack("{s:s, s:s, s:s}", "dev", s->egress.ifname, "qdisc", s->egress.desc,
					      "queueing", net_queueing_name(s->egress.queueing)));
	json_object_set_new(j, "fault_requests", json_integer((json_int_t)ss.requests));
	/* what the destination installed, by origin (its view is the one that counts) */
	uint64_t od = ss.pages_fault, pu = ss.pages_pushed, pf = ss.pages_prefetch, lo = 0;
	json_t *m = s->dest_mem;
	if (m) {
		json_t *v;
		if ((v = json_object_get(m, "pages_on_demand")) && json_is_integer(v))
			od = json_integer_value(v);
		if ((v = json_object_get(m, "pages_pushed")) && json_is_integer(v))
			pu = json_integer_value(v);
		if ((v = json_object_get(m, "pages_prefetched")) && json_is_integer(v))
			pf = json_integer_value(v);
		if ((v = json_object_get(m, "pages_local")) && json_is_integer(v))
			lo = json_integer_value(v);
		json_t *fl = json_object_get(m, "fault_latency_us");
		if (fl && json_is_object(fl))
			json_object_update(lat, fl);
	}
	json_object_set_new(j, "pages_on_demand", json_integer((json_int_t)od));
	json_object_set_new(j, "pages_pushed", json_integer((json_int_t)pu));
	json_object_set_new(j, "pages_prefetched", json_integer((json_int_t)pf));
	json_object_set_new(j, "pages_local", json_integer((json_int_t)lo));
	if (!json_object_get(lat, "p50")) {
		json_object_set_new(lat, "p50", json_real(0));
		json_object_set_new(lat, "p99", json_real(0));
	}
	json_object_set_new(j, "fault_latency_us", lat);
	if (s->rounds)
		json_object_set_new(j, "precopy_rounds", json_incref(s->rounds));
	if (s->dump_stats)
		json_object_set_new(j, "dump", json_incref(s->dump_stats));
	if (s->dest_restore)
		json_object_set_new(j, "restore", json_incref(s->dest_restore));
	if (s->dest_mem)
		json_object_set_new(j, "destination", json_incref(s->dest_mem));
	if (s->dest_pid > 0)
		json_object_set_new(j, "dest_pid", json_integer(s->dest_pid));
	return j;
}
