/* fuzz_sibling.c — libFuzzer harness for the sibling message and circle
 * decoders (wire/sibling.h, wire/circle.h).  What decodes must be
 * consistent: a copy that decodes re-encodes to the same bytes; a carry's
 * payloads walk exactly to its end; a circle stays within its limits; the
 * bulk state's rel, history, invites and synced re-encode to the same
 * bytes. */
#include <stdlib.h>
#include <string.h>
#include "wire/sibling.h"
#include "wire/circle.h"

/* A bulk-state message re-encoded from what was decoded: its bytes. */
static void same_bulk(const struct relm_sib_msg *m, const uint8_t *data, size_t size)
{
	struct relm_sib_invite v[RELM_SIB_INVITES_MAX];
	struct relm_sib_hmsg h;
	uint8_t *out = NULL;
	size_t len = 0, it = 0, n = 0;
	int rc = 0;

	if (m->type == RELM_SIB_REL) {
		rc = relm_sib_rel_encode(&out, &len, &m->u.rel);
	} else if (m->type == RELM_SIB_SYNCED) {
		rc = relm_sib_synced_encode(&out, &len, &m->u.synced);
	} else if (m->type == RELM_SIB_INVITES) {
		while (relm_sib_invites_next(&m->u.invites, &it, &v[n]))
			n++;
		rc = relm_sib_invites_encode(&out, &len, v, n);
	} else if (m->type == RELM_SIB_HISTORY) {
		rc = relm_sib_history_new(&out, &len, m->u.history.rel);
		while (rc == 0 && relm_sib_history_next(&m->u.history, &it, &h))
			rc = relm_sib_history_append(&out, &len, &h);
		if (it != m->u.history.list_len)
			abort();
	} else {
		return;
	}
	if (rc != 0 || len != size || memcmp(out, data, size) != 0)
		abort();
	relm_sib_buf_free(out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_sib_msg m;
	struct relm_circle c;

	if (relm_circle_decode(&c, data, size) == 0 && (c.count == 0 || c.count > RELM_MAX_DEVICES))
		abort();
	if (relm_sib_decode(&m, data, size) != 0)
		return 0;
	if (m.type == RELM_SIB_COPY) {
		uint8_t *out;
		size_t len;
		if (relm_sib_copy_encode(&out, &len, &m.u.copy) != 0 || len != size ||
		    memcmp(out, data, size) != 0)
			abort();
		relm_sib_buf_free(out, len);
	} else if (m.type == RELM_SIB_CARRY) {
		const uint8_t *p;
		size_t it = 0, plen, k = 0;
		while (relm_sib_carry_next(&m.u.carry, &it, &p, &plen))
			k++;
		if (k != m.u.carry.count || it != m.u.carry.list_len)
			abort();
	} else {
		same_bulk(&m, data, size);
	}
	return 0;
}
