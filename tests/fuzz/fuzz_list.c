/*
 * fuzz_list.c - libFuzzer harness: S3 listing and error bodies, through the parsers and the
 * key -> name rules of the listing builder (the same code the daemon runs on S3's answers).
 */
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "meta.h"
#include "s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_list_page pg;
	struct tfs_listing *l;
	char code[64], msg[128];
	tfs_log_set_level(TFS_LOG_ERROR); /* skipped keys warn: not news here */
	if (s3_parse_list_xml((const char *)data, size, &pg) == 0) {
		if (meta_listing_from_pages("d/", &pg, 1, &l) == 0)
			policy_listing_put(l);
		if (meta_listing_from_pages("", &pg, 1, &l) == 0)
			policy_listing_put(l);
		s3_list_page_free(&pg);
	}
	s3_parse_error_xml((const char *)data, size, code, sizeof(code), msg, sizeof(msg));
	return 0;
}
