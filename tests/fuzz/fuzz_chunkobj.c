/*
 * fuzz_chunkobj.c - libFuzzer harness: objects read from a shared cache bucket, which anyone
 * who can write the bucket controls, through chunkobj_verify (the same code the shared tier
 * runs on every GET), with and without a fleet key, as this chunk's body and as another's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkobj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char kb[] = "0123456789abcdef";
	const struct chunkobj_key keys[2] = { { NULL, 0 }, { kb, 16 } };
	struct chunkobj_id id = { "http://127.0.0.1:9000/src", "k", "\"e\"", 65536, 0 };
	char *body = malloc(size ? size : 1); /* exactly size bytes: ASan sees any overread */
	if (!body)
		return 0;
	memcpy(body, data, size);
	for (int k = 0; k < 2; k++) {
		const char *p;
		size_t want = size > 100 ? size - 100 : 0;
		if (chunkobj_verify(&id, body, size, want, &keys[k], &p) == 0 &&
		    (p < body || p + want > body + size))
			abort(); /* a payload outside the body */
		chunkobj_verify(&id, body, size, 65536, &keys[k], &p);
	}
	/* a valid body of the first bytes, so the fuzzer reaches past the header checks */
	char *enc;
	size_t elen;
	if (chunkobj_encode(&id, body, size < 4096 ? size : 4096, NULL, &keys[size & 1], &enc,
			    &elen) == 0) {
		const char *p;
		if (chunkobj_verify(&id, enc, elen, size < 4096 ? size : 4096, &keys[size & 1], &p))
			abort(); /* what encode wrote, verify must take */
		free(enc);
	}
	free(body);
	return 0;
}
