/*
 * check.h - the assertion macro of the C test programs: counts, reports the failing line, and
 * lets the program finish with "N passed, N failed" (CHECK_SUMMARY), exit status 1 on failure.
 */
#ifndef TIERFS_CHECK_H
#define TIERFS_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (cond) {                                                            \
			check_passed++;                                                \
		} else {                                                               \
			check_failed++;                                                \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                      \
	} while (0)

#define CHECK_SUMMARY()                                                                \
	(printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

#endif
