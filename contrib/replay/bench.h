/*
 * bench.h - what the benchmark programs here share: the process's resident memory.
 */
#ifndef TIERFS_REPLAY_BENCH_H
#define TIERFS_REPLAY_BENCH_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

/* VmRSS of this process in KiB (0 when /proc cannot say). */
static inline uint64_t rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kib = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %" SCNu64, &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

#endif
