/*
 * ctlproto.h - the control protocol of MOUNT/.tierfs, without FUSE: the statistics files
 * rendered from a snapshot (stats, stats.json, metrics; fields documented in the README), and
 * the commands written to ctl, cut into lines and parsed.  fs/ctl.c serves the files and
 * carries the commands out.
 *
 * Pure functions: no locks, no I/O but the FILE they are given, no clock.
 */
#ifndef TIERFS_CTLPROTO_H
#define TIERFS_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

/* What the statistics show besides the snapshot. */
struct ctl_info {
	const char *version, *bucket, *prefix;
	bool prefetch;
	uint64_t prefetch_budget;
};

void ctl_render_text(const struct ctl_info *in, const struct policy_snapshot *s, FILE *f);
void ctl_render_json(const struct ctl_info *in, const struct policy_snapshot *s, FILE *f);
void ctl_render_metrics(const struct ctl_info *in, const struct policy_snapshot *s, FILE *f);

/* ---- commands ---- */

#define CTL_LINE_MAX 65536 /* the longest command line */
#define CTL_MAX_WORDS 64

enum ctl_verb { CTL_NOP, CTL_INVALIDATE, CTL_WARM, CTL_DEMOTE, CTL_PURGE, CTL_RESET_STATS };

struct ctl_cmd {
	enum ctl_verb verb;
	int nargs;
	char *args[CTL_MAX_WORDS]; /* point into the parsed line */
};

/* Parses one command line (modified in place): words separated by blanks, "double quotes"
 * group, a backslash escapes the next character.  -EINVAL for anything malformed, with *why
 * saying what (for the log).  An empty line is CTL_NOP. */
int ctl_parse(char *line, struct ctl_cmd *out, const char **why);

/* What was written to ctl and not yet run: a partial last line. */
struct ctl_lines {
	char *buf;
	size_t len;
};

/* Appends data and runs each complete line with run(ctx, line) (flush: the partial last line
 * too); after the first failure no more lines run, and its error is returned.  A line longer
 * than CTL_LINE_MAX (complete or still partial) is -EMSGSIZE, and what is buffered is
 * dropped; the limit is per line, not per write. */
int ctl_lines_feed(struct ctl_lines *cl, const char *data, size_t size, bool flush,
		   int (*run)(void *ctx, char *line), void *ctx);
void ctl_lines_free(struct ctl_lines *cl);

#endif
