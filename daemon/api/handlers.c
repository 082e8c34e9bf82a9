/*
 * handlers.c — the engine-backed methods of the socket API (proto/api.md §4),
 * one handler per method, named after it (see handlers.h for how they
 * reach the application).  Parameters arrive validated against the method
 * table (methods.c): ids are 32 lowercase hex characters, strings are
 * UTF-8 within their limits, unknown fields were refused.  A handler that
 * writes opens the turn's store batch first (backend->txn); its reply is
 * written only after that batch commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "api/handlers.h"
#include "core/core.h"
#include "crypto/crypto.h"
#include "error.h"
#include "wire/invite.h"
#include "wire/pairing.h"
#include "store/store.h"

static struct relmd_api_backend *backend_of(struct relmd_call *call)
{
	return call->app;
}

static int begin_txn(struct relmd_api_backend *b)
{
	return b->txn(b->ctx);
}

/* A validated hex id param: 1 present (out written), 0 absent. */
static int param_id(const cJSON *params, const char *name, uint8_t out[RELM_ID_LEN])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
	if (!cJSON_IsString(v))
		return 0;
	return relm_unhex(out, RELM_ID_LEN, v->valuestring, strlen(v->valuestring)) == 0;
}

static const char *param_str(const cJSON *params, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int add_hex(cJSON *o, const char *name, const uint8_t *b, size_t n)
{
	char hex[2 * 64 + 1];
	relm_hex(hex, b, n);
	return cJSON_AddStringToObject(o, name, hex) != NULL;
}

static int nomem(cJSON *r)
{
	cJSON_Delete(r);
	return RELM_ENOMEM;
}

/* ---- protons ------------------------------------------------------------- */

static int api_proton_create(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t id[RELM_ID_LEN], ipk[RELM_SIGN_PK_LEN];
	cJSON *r;
	int rc;

	if ((rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_proton_create(be->core, param_str(params, "label"), id, ipk)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "proton", id, sizeof id) ||
	    !add_hex(r, "ipk", ipk, sizeof ipk))
		return nomem(r);
	*result = r;
	return 0;
}

struct list_ctx {
	struct relmd_api_backend *be;
	cJSON *arr;
	int n;
};

static int count_dev_cb(void *ctx, const struct relm_store_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

static int proton_cb(void *ctx, const struct relm_store_proton *p)
{
	struct list_ctx *lc = ctx;
	cJSON *o = cJSON_CreateObject();
	int devices = 0;

	relm_store_device_list(lc->be->store, p->id, count_dev_cb, &devices);
	if (!o || !add_hex(o, "proton", p->id, RELM_ID_LEN) ||
	    !cJSON_AddStringToObject(o, "label", p->label) ||
	    !add_hex(o, "ipk", p->ipk, RELM_SIGN_PK_LEN) ||
	    !cJSON_AddStringToObject(o, "strategy", p->strategy) ||
	    (!sodium_is_zero(p->pinned, RELM_ID_LEN) && !add_hex(o, "leader", p->pinned, RELM_ID_LEN)) ||
	    !cJSON_AddNumberToObject(o, "devices", devices) ||
	    !cJSON_AddNumberToObject(o, "created", (double)p->created)) {
		cJSON_Delete(o);
		return RELM_ENOMEM;
	}
	cJSON_AddItemToArray(lc->arr, o);
	return 0;
}

static int api_proton_list(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct list_ctx lc = { backend_of(call), NULL, 0 };
	cJSON *r = cJSON_CreateObject();
	int rc;

	(void)params;
	if (!r || !(lc.arr = cJSON_AddArrayToObject(r, "protons")))
		return nomem(r);
	if ((rc = relm_store_proton_list(lc.be->store, proton_cb, &lc)) != 0) {
		cJSON_Delete(r);
		return rc;
	}
	*result = r;
	return 0;
}

static int proton_exists(struct relmd_api_backend *be, const uint8_t id[RELM_ID_LEN])
{
	struct relm_store_proton p;
	int rc = relm_store_proton_get(be->store, id, &p, 0);
	relm_store_proton_clear(&p);
	return rc;
}

static int api_proton_set_strategy(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t id[RELM_ID_LEN], pinned[RELM_ID_LEN];
	const char *strategy = param_str(params, "strategy");
	int has_pin = param_id(params, "leader", pinned);
	uint64_t seq = 0;
	cJSON *r;
	int rc;

	param_id(params, "proton", id);
	if ((rc = proton_exists(be, id)) != 0 || (rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_strategy_set(be->core, id, relm_core_strategy_parse(strategy),
	                                 has_pin ? pinned : NULL, &seq)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !cJSON_AddStringToObject(r, "strategy", strategy) ||
	    (has_pin && !add_hex(r, "leader", pinned, RELM_ID_LEN)) ||
	    !cJSON_AddNumberToObject(r, "seq", (double)seq))
		return nomem(r);
	*result = r;
	return 0;
}

/* ---- invites ------------------------------------------------------------- */

static int api_invite_create(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t proton[RELM_ID_LEN], mbox[RELM_SIGN_PK_LEN];
	char text[RELM_INVITE_TEXT_MAX];
	const cJSON *mu = cJSON_GetObjectItemCaseSensitive(params, "multi_use");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(params, "ttl_s");
	struct relm_invite inv;
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	if ((rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_invite_create(be->core, proton, cJSON_IsTrue(mu),
	                                  cJSON_IsNumber(ttl) ? (uint64_t)ttl->valuedouble : 0,
	                                  text, sizeof text, mbox)) != 0)
		return rc;
	be->watch_mailbox(be->ctx, mbox);
	if ((rc = relm_invite_decode(&inv, text, strlen(text))) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !cJSON_AddStringToObject(r, "invite", text) ||
	    !cJSON_AddNumberToObject(r, "expires_at", (double)inv.expires_ms) ||
	    !cJSON_AddBoolToObject(r, "multi_use", cJSON_IsTrue(mu)))
		return nomem(r);
	*result = r;
	return 0;
}

static int api_invite_accept(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t proton[RELM_ID_LEN], rel[RELM_ID_LEN];
	const char *text = param_str(params, "invite");
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	if ((rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_invite_accept(be->core, proton, text, strlen(text),
	                                  param_str(params, "label"), rel)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "relationship", rel, sizeof rel))
		return nomem(r);
	*result = r;
	return 0;
}

/* ---- relationships --------------------------------------------------------- */

static int rel_cb(void *ctx, const struct relm_store_rel *sr)
{
	struct list_ctx *lc = ctx;
	cJSON *o = cJSON_CreateObject();
	if (!o || !add_hex(o, "relationship", sr->id, RELM_ID_LEN) ||
	    !cJSON_AddStringToObject(o, "label", sr->label) ||
	    !add_hex(o, "remote_ipk", sr->remote_ipk, RELM_SIGN_PK_LEN) ||
	    !cJSON_AddNumberToObject(o, "last_activity", (double)sr->last_activity) ||
	    !cJSON_AddNumberToObject(o, "unread", sr->unread) ||
	    !cJSON_AddNumberToObject(o, "created", (double)sr->created)) {
		cJSON_Delete(o);
		return RELM_ENOMEM;
	}
	cJSON_AddItemToArray(lc->arr, o);
	return 0;
}

static int api_relationship_list(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct list_ctx lc = { backend_of(call), NULL, 0 };
	uint8_t proton[RELM_ID_LEN];
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	if ((rc = proton_exists(lc.be, proton)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !(lc.arr = cJSON_AddArrayToObject(r, "relationships")))
		return nomem(r);
	if ((rc = relm_store_rel_list(lc.be->store, proton, NULL, 0, rel_cb, &lc)) != 0) {
		cJSON_Delete(r);
		return rc;
	}
	*result = r;
	return 0;
}

static int api_relationship_show(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t id[RELM_ID_LEN];
	struct relm_store_rel sr;
	struct relm_rel *rel = NULL;
	struct relm_rel_info *info = NULL;
	uint64_t unacked;
	cJSON *r = NULL, *tree, *nodes;
	int rc;

	memset(&sr, 0, sizeof sr);
	param_id(params, "relationship", id);
	if ((rc = relm_store_rel_get(be->store, id, &sr, 0)) != 0)
		return rc;
	if (!(info = malloc(sizeof *info))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm_core_rel_load(be->core, id, &rel)) != 0)
		goto out;
	relm_rel_describe(rel, info);
	relm_rel_free(rel);
	unacked = info->unacknowledged;
	if (info->unacknowledged_partial &&
	    (rc = relm_store_outgoing_count(be->store, id, &unacked)) != 0)
		goto out;
	rc = RELM_ENOMEM;
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "relationship", id, sizeof id) ||
	    !add_hex(r, "proton", sr.proton, RELM_ID_LEN) ||
	    !cJSON_AddStringToObject(r, "label", sr.label) ||
	    !add_hex(r, "remote_ipk", sr.remote_ipk, RELM_SIGN_PK_LEN) ||
	    !cJSON_AddStringToObject(r, "mode", info->mode == RELM_MODE_STRICT ? "strict" : "tree") ||
	    !cJSON_AddStringToObject(r, "remote_mailbox", info->remote_mailbox) ||
	    !(tree = cJSON_AddObjectToObject(r, "tree")) ||
	    !(nodes = cJSON_AddArrayToObject(tree, "nodes")))
		goto out;
	for (uint32_t i = 0; i < info->nnodes; i++) {
		const struct relm_rel_node_info *n = &info->nodes[i];
		cJSON *o = cJSON_CreateObject();
		if (!o)
			goto out;
		cJSON_AddItemToArray(nodes, o);
		if (!add_hex(o, "node", n->id, RELM_ID_LEN) ||
		    !(n->parent_index >= 0 ? add_hex(o, "parent", n->parent, RELM_ID_LEN)
		                           : cJSON_AddNullToObject(o, "parent") != NULL) ||
		    !cJSON_AddStringToObject(o, "side", n->ours ? "ours" : "theirs") ||
		    !cJSON_AddNumberToObject(o, "depth", n->depth) ||
		    !cJSON_AddBoolToObject(o, "valid", n->valid) ||
		    !cJSON_AddNumberToObject(o, "n", n->n) ||
		    !cJSON_AddBoolToObject(o, "has_private_key", n->has_private_key))
			goto out;
	}
	if (!(info->chosen >= 0 ? add_hex(tree, "chosen", info->nodes[info->chosen].id, RELM_ID_LEN)
	                        : cJSON_AddNullToObject(tree, "chosen") != NULL) ||
	    !cJSON_AddNumberToObject(tree, "pending", info->pending) ||
	    !cJSON_AddNumberToObject(r, "unacknowledged", (double)unacked) ||
	    !cJSON_AddNumberToObject(r, "forks", info->forks) ||
	    !cJSON_AddNumberToObject(r, "pruned", info->pruned))
		goto out;
	*result = r;
	r = NULL;
	rc = 0;
out:
	cJSON_Delete(r);
	free(info);
	relm_store_rel_clear(&sr);
	return rc;
}

/* ---- messages -------------------------------------------------------------- */

static int api_message_send(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t rel[RELM_ID_LEN], id[RELM_ID_LEN], got[RELM_ID_LEN];
	const char *body = param_str(params, "body");
	int has_id, was_new = 0, rc, status = RELM_STATUS_QUEUED;
	cJSON *r;

	param_id(params, "relationship", rel);
	has_id = param_id(params, "id", id);
	if ((rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_message_send(be->core, rel, body, strlen(body),
	                                 has_id ? id : NULL, got, &was_new)) != 0)
		return rc;
	if (!was_new) {
		/* idempotent repeat: report where the first one is */
		struct relm_store_msg m;
		if (relm_store_msg_get(be->store, rel, got, &m) == 0)
			status = m.status;
	}
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "message", got, sizeof got) ||
	    !cJSON_AddStringToObject(r, "status", relm_status_name(status)) ||
	    !cJSON_AddBoolToObject(r, "new", was_new))
		return nomem(r);
	*result = r;
	return 0;
}

static int msg_cb(void *ctx, const struct relm_store_msg *m)
{
	struct list_ctx *lc = ctx;
	cJSON *o = cJSON_CreateObject();
	if (!o || !add_hex(o, "message", m->id, RELM_ID_LEN) ||
	    !cJSON_AddStringToObject(o, "direction", m->direction_in ? "in" : "out") ||
	    !cJSON_AddStringToObject(o, "kind", m->kind) ||
	    !cJSON_AddNumberToObject(o, "ts", (double)m->ts) ||
	    !cJSON_AddStringToObject(o, "status", relm_status_name(m->status)) ||
	    !cJSON_AddStringToObject(o, "origin", relm_origin_name(m->origin)) ||
	    !cJSON_AddNumberToObject(o, "seq", (double)m->seq)) {
		cJSON_Delete(o);
		return RELM_ENOMEM;
	}
	/* bodies are UTF-8 (checked on the wire); show exactly those bytes */
	char *b = malloc(m->body_len + 1);
	if (!b) {
		cJSON_Delete(o);
		return RELM_ENOMEM;
	}
	/* an empty body (the hello message) comes as NULL, 0: memcpy from
	 * NULL is undefined even for 0 bytes (UBSan stopped relmd here) */
	if (m->body_len)
		memcpy(b, m->body, m->body_len);
	b[m->body_len] = 0;
	cJSON *bs = cJSON_AddStringToObject(o, "body", b);
	sodium_memzero(b, m->body_len);
	free(b);
	if (!bs || (m->reason[0] && !cJSON_AddStringToObject(o, "reason", m->reason))) {
		cJSON_Delete(o);
		return RELM_ENOMEM;
	}
	cJSON_AddItemToArray(lc->arr, o);
	return 0;
}

static int api_message_list(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct list_ctx lc = { backend_of(call), NULL, 0 };
	struct relm_store *st = lc.be->store;
	uint8_t rel[RELM_ID_LEN], before[RELM_ID_LEN];
	const cJSON *lim = cJSON_GetObjectItemCaseSensitive(params, "limit");
	struct relm_store_rel sr;
	int64_t before_seq = 0;
	cJSON *r;
	int rc;

	param_id(params, "relationship", rel);
	memset(&sr, 0, sizeof sr);
	if ((rc = relm_store_rel_get(st, rel, &sr, 0)) != 0)
		return rc;
	relm_store_rel_clear(&sr);
	if (param_id(params, "before", before)) {
		struct relm_store_msg m;
		if ((rc = relm_store_msg_get(st, rel, before, &m)) != 0)
			return rc;
		before_seq = m.seq;
	}
	if (!(r = cJSON_CreateObject()) || !(lc.arr = cJSON_AddArrayToObject(r, "messages")))
		return nomem(r);
	rc = relm_store_msg_list(st, rel, before_seq, cJSON_IsNumber(lim) ? (unsigned)lim->valuedouble : 50,
	                         msg_cb, &lc);
	if (rc != 0) {
		cJSON_Delete(r);
		return rc;
	}
	*result = r;
	return 0;
}

/* ---- devices --------------------------------------------------------------- */

static int dev_cb(void *ctx, const struct relm_store_device *d)
{
	struct list_ctx *lc = ctx;
	cJSON *o = cJSON_CreateObject();
	if (!o || !add_hex(o, "device", d->device, RELM_ID_LEN) ||
	    !cJSON_AddStringToObject(o, "label", d->label) ||
	    !cJSON_AddBoolToObject(o, "self", d->self) ||
	    !cJSON_AddNumberToObject(o, "epoch", (double)d->epoch) ||
	    !cJSON_AddNumberToObject(o, "added", (double)d->added)) {
		cJSON_Delete(o);
		return RELM_ENOMEM;
	}
	cJSON_AddItemToArray(lc->arr, o);
	return 0;
}

static int api_device_list(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct list_ctx lc = { backend_of(call), NULL, 0 };
	uint8_t proton[RELM_ID_LEN];
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	if ((rc = proton_exists(lc.be, proton)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !(lc.arr = cJSON_AddArrayToObject(r, "devices")))
		return nomem(r);
	if ((rc = relm_store_device_list(lc.be->store, proton, dev_cb, &lc)) != 0) {
		cJSON_Delete(r);
		return rc;
	}
	*result = r;
	return 0;
}

/* ---- pairing (proto/devices.md §12) ---------------------------------------- */

/* The pairing mailboxes a code names (M_E, M_J). */
static int code_mailboxes(const char *code, uint8_t m_e[RELM_SIGN_PK_LEN], uint8_t m_j[RELM_SIGN_PK_LEN])
{
	struct relm_pair_code pc;
	struct relm_pair_keys k;
	int rc;

	if ((rc = relm_pair_code_decode(&pc, code, strlen(code), 0)) != 0)
		return rc;
	relm_pair_derive(&k, pc.secret);
	memcpy(m_e, k.mbox_e_pk, RELM_SIGN_PK_LEN);
	memcpy(m_j, k.mbox_j_pk, RELM_SIGN_PK_LEN);
	sodium_memzero(&pc, sizeof pc);
	sodium_memzero(&k, sizeof k);
	return 0;
}

static int api_device_pair_begin(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t proton[RELM_ID_LEN], m_e[RELM_SIGN_PK_LEN], m_j[RELM_SIGN_PK_LEN];
	char code[RELM_PAIR_CODE_MAX];
	uint64_t expires = 0;
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	if ((rc = proton_exists(be, proton)) != 0 || (rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_pair_begin(be->core, proton, code, sizeof code, &expires)) != 0)
		return rc;
	if ((rc = code_mailboxes(code, m_e, m_j)) == 0)
		be->watch_mailbox(be->ctx, m_e);
	if (rc != 0 || !(r = cJSON_CreateObject()) || !cJSON_AddStringToObject(r, "code", code) ||
	    !cJSON_AddNumberToObject(r, "expires_at", (double)expires)) {
		sodium_memzero(code, sizeof code);
		return rc ? rc : RELM_ENOMEM;
	}
	sodium_memzero(code, sizeof code);
	*result = r;
	return 0;
}

static int self_cb(void *ctx, const struct relm_store_device *d)
{
	if (d->self)
		memcpy(ctx, d->device, RELM_ID_LEN);
	return 0;
}

/* Never waits: while the WELCOME is awaited the call fails with `pending`
 * (the JOIN is stored and posted; calling again with the same code
 * resumes), and relmctl calls again until RELM_PAIR_WAIT_MS have passed. */
static int api_device_pair_join(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	const char *code = param_str(params, "code");
	uint8_t pairing[RELM_ID_LEN], proton[RELM_ID_LEN], device[RELM_ID_LEN] = { 0 };
	uint8_t m_e[RELM_SIGN_PK_LEN], m_j[RELM_SIGN_PK_LEN];
	cJSON *r;
	int rc;

	if ((rc = begin_txn(be)) != 0)
		return rc;
	rc = relm_core_pair_join(be->core, code, strlen(code), param_str(params, "label"), pairing, proton);
	if (rc == RELM_EPENDING && code_mailboxes(code, m_e, m_j) == 0)
		be->watch_mailbox(be->ctx, m_j);
	if (rc == RELM_EPENDING || rc == RELM_ENOTFOUND)
		rc = relm_core_pair_status(be->core, pairing, proton);
	if (rc != 0)
		return rc;
	if ((rc = relm_store_device_list(be->store, proton, self_cb, device)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "proton", proton, RELM_ID_LEN) ||
	    !add_hex(r, "device", device, RELM_ID_LEN))
		return nomem(r);
	*result = r;
	return 0;
}

/* ---- revocation and the identity roll (proto/revocation.md) ---------------- */

static int api_device_revoke(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	int roll = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "rotate_identity"));
	uint8_t proton[RELM_ID_LEN], device[RELM_ID_LEN], ipk[RELM_SIGN_PK_LEN];
	uint64_t epoch = 0;
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	param_id(params, "device", device);
	if ((rc = proton_exists(be, proton)) != 0 || (rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_device_revoke(be->core, proton, device, roll, &epoch, ipk)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !cJSON_AddNumberToObject(r, "epoch", (double)epoch) ||
	    (roll && !add_hex(r, "ipk", ipk, sizeof ipk)))
		return nomem(r);
	*result = r;
	return 0;
}

static int api_identity_rotate(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	uint8_t proton[RELM_ID_LEN], ipk[RELM_SIGN_PK_LEN];
	cJSON *r;
	int rc;

	param_id(params, "proton", proton);
	if ((rc = proton_exists(be, proton)) != 0 || (rc = begin_txn(be)) != 0 ||
	    (rc = relm_core_identity_rotate(be->core, proton, ipk)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "ipk", ipk, sizeof ipk))
		return nomem(r);
	*result = r;
	return 0;
}

static int api_identity_accept(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	const char *hex = param_str(params, "ipk");
	uint8_t rel[RELM_ID_LEN], ipk[RELM_SIGN_PK_LEN];
	cJSON *r;
	int rc;

	param_id(params, "relationship", rel);
	if (!hex || relm_unhex(ipk, sizeof ipk, hex, strlen(hex)) != 0)
		return RELM_EINVAL;
	if ((rc = begin_txn(be)) != 0 || (rc = relm_core_identity_accept(be->core, rel, ipk)) != 0)
		return rc;
	if (!(r = cJSON_CreateObject()) || !add_hex(r, "ipk", ipk, sizeof ipk))
		return nomem(r);
	*result = r;
	return 0;
}

/* ---- store.check ---------------------------------------------------------- */

enum { CHECK_LIST_MAX = 100 };         /* problems listed in one reply; the totals count all */

struct check_ctx {
	cJSON *integrity, *rows;
	unsigned nrows;
	int bad;                           /* out of memory */
};

static void check_integrity_cb(void *ctx, const char *line)
{
	struct check_ctx *k = ctx;
	cJSON *s;
	if (cJSON_GetArraySize(k->integrity) >= CHECK_LIST_MAX)
		return;
	if (!(s = cJSON_CreateString(line)))
		k->bad = 1;
	else
		cJSON_AddItemToArray(k->integrity, s);
}

static void check_row_cb(void *ctx, const struct relm_event *ev)
{
	struct check_ctx *k = ctx;
	cJSON *o;
	if (k->nrows++ >= CHECK_LIST_MAX)
		return;
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "table", ev->table) ||
	    ((ev->has & RELM_EVF_ROW) && !cJSON_AddNumberToObject(o, "row", (double)ev->row)) ||
	    !cJSON_AddStringToObject(o, "reason", ev->reason) ||
	    ((ev->has & RELM_EVF_REL) && !add_hex(o, "relationship", ev->rel, RELM_ID_LEN)) ||
	    ((ev->has & RELM_EVF_MSG) && !add_hex(o, "message", ev->msg, RELM_ID_LEN)) ||
	    ((ev->has & RELM_EVF_PROTON) && !add_hex(o, "proton", ev->proton, RELM_ID_LEN))) {
		cJSON_Delete(o);
		k->bad = 1;
		return;
	}
	cJSON_AddItemToArray(k->rows, o);
}

/* Reads only, on the loop: a whole pass over the file (proto/api.md). */
static int api_store_check(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_api_backend *be = backend_of(call);
	int quick = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "quick"));
	struct check_ctx k = { NULL, NULL, 0, 0 };
	cJSON *r = cJSON_CreateObject();
	int rc;

	if (!r || !(k.integrity = cJSON_AddArrayToObject(r, "integrity")) ||
	    !(k.rows = cJSON_AddArrayToObject(r, "corrupt_rows")))
		return nomem(r);
	if ((rc = relm_store_check(be->store, quick, check_integrity_cb, check_row_cb, &k)) != 0) {
		cJSON_Delete(r);
		return rc;
	}
	if (k.bad || !cJSON_AddStringToObject(r, "check", quick ? "quick_check" : "integrity_check") ||
	    !cJSON_AddNumberToObject(r, "corrupt_total", k.nrows) ||
	    !cJSON_AddBoolToObject(r, "ok", cJSON_GetArraySize(k.integrity) == 0 && k.nrows == 0))
		return nomem(r);
	*result = r;
	return 0;
}

int relmd_api_bind(struct relmd_methods *ms, struct relmd_api_backend *b)
{
	static const struct {
		const char *name;
		relmd_handler_fn fn;
	} tab[] = {
		{ "proton.create", api_proton_create },
		{ "proton.list", api_proton_list },
		{ "proton.set_strategy", api_proton_set_strategy },
		{ "invite.create", api_invite_create },
		{ "invite.accept", api_invite_accept },
		{ "relationship.list", api_relationship_list },
		{ "relationship.show", api_relationship_show },
		{ "message.send", api_message_send },
		{ "message.list", api_message_list },
		{ "device.list", api_device_list },
		{ "device.pair.begin", api_device_pair_begin },
		{ "device.pair.join", api_device_pair_join },
		{ "device.revoke", api_device_revoke },
		{ "identity.rotate", api_identity_rotate },
		{ "identity.accept", api_identity_accept },
		{ "store.check", api_store_check },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (relmd_methods_bind(ms, tab[i].name, tab[i].fn, b) != 0)
			return RELM_ENOTFOUND;
	return 0;
}
