/*
 * event_json.c — typed events as notification lines (see event_json.h).
 *
 * The members are listed once, in members(), and written through a sink:
 * the direct writer of api/events.h first (it prints cJSON's bytes without
 * building a tree: the common events cost no allocation per member), and
 * cJSON itself when the direct writer declines (a number above 10^15, which
 * cJSON prints in its own float format, or out of memory).  Either way the
 * bytes are cJSON's.
 */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "relmd/event_json.h"
#include "api/events.h"
#include "crypto/crypto.h"
#include "error.h"

struct sink {
	struct relmd_evline *w;      /* the direct writer, or NULL: */
	cJSON *o;                    /* the members of a cJSON object */
	int bad;                     /* cJSON ran out of memory */
};

static void put_str(struct sink *k, const char *key, const char *v)
{
	if (k->w)
		relmd_evline_str(k->w, key, v);
	else if (!cJSON_AddStringToObject(k->o, key, v))
		k->bad = 1;
}

static void put_uint(struct sink *k, const char *key, uint64_t v)
{
	if (k->w)
		relmd_evline_uint(k->w, key, v);
	else if (!cJSON_AddNumberToObject(k->o, key, (double)v))
		k->bad = 1;
}

static void put_hex(struct sink *k, const char *key, const uint8_t *b, size_t n)
{
	char hex[2 * RELM_SIGN_PK_LEN + 1];

	relm_hex(hex, b, n);
	put_str(k, key, hex);
}

/* message.received / .sent: what the message says, from the history. */
static void add_message(struct sink *k, struct relm_store *st, const struct relm_event *ev)
{
	struct relm_store_msg m;
	uint8_t *body = NULL;
	size_t len = 0;

	if (relm_store_msg_get_body(st, ev->rel, ev->msg, &m, &body, &len) != 0)
		return;
	put_str(k, "body", (const char *)body);
	put_str(k, "kind", m.kind);
	put_uint(k, "sent_ts", m.ts);
	put_str(k, "origin", relm_origin_name(m.origin));
	relm_store_buf_free(body, len);
}

/* relationship.created: whose it is and with whom, so a client can show it
 * without a second call. */
static void add_relationship(struct sink *k, struct relm_store *st, const struct relm_event *ev)
{
	struct relm_store_rel r;

	memset(&r, 0, sizeof r);
	if (relm_store_rel_get(st, ev->rel, &r, 0) == 0) {
		put_hex(k, "proton", r.proton, RELM_ID_LEN);
		put_hex(k, "remote_ipk", r.remote_ipk, RELM_SIGN_PK_LEN);
		put_str(k, "label", r.label);
	}
	relm_store_rel_clear(&r);
}

/* proton.created: its label, so a client can list it without a second
 * call. */
static void add_proton(struct sink *k, struct relm_store *st, const struct relm_event *ev)
{
	struct relm_store_proton p;

	memset(&p, 0, sizeof p);
	if (relm_store_proton_get(st, ev->proton, &p, 0) == 0)
		put_str(k, "label", p.label);
	relm_store_proton_clear(&p);
}

/* Every member after seq, type and ts, in one order for all types (the
 * order of the lines relmd wrote before events were typed). */
static void members(struct sink *k, struct relm_store *st, const struct relm_event *ev)
{
	unsigned h = ev->has;

	if (h & RELM_EVF_REL)
		put_hex(k, "relationship", ev->rel, RELM_ID_LEN);
	if (h & RELM_EVF_MSG)
		put_hex(k, "message", ev->msg, RELM_ID_LEN);
	if ((ev->type == RELM_EV_MESSAGE_RECEIVED || ev->type == RELM_EV_MESSAGE_SENT) &&
	    (h & RELM_EVF_REL) && (h & RELM_EVF_MSG))
		add_message(k, st, ev);
	if (ev->type == RELM_EV_RELATIONSHIP_CREATED && (h & RELM_EVF_REL))
		add_relationship(k, st, ev);
	if (h & RELM_EVF_STATUS)
		put_str(k, "status", relm_status_name(ev->status));
	if (h & RELM_EVF_REASON)
		put_str(k, "reason", ev->reason);
	if (h & RELM_EVF_NODE)
		put_hex(k, "node", ev->node, RELM_ID_LEN);
	if (h & RELM_EVF_PRUNED)
		put_uint(k, "pruned", ev->pruned);
	if (h & RELM_EVF_PROTON)
		put_hex(k, "proton", ev->proton, RELM_ID_LEN);
	if (ev->type == RELM_EV_PROTON_CREATED && (h & RELM_EVF_PROTON))
		add_proton(k, st, ev);
	if (h & RELM_EVF_DEVICE)
		put_hex(k, "device", ev->device, RELM_ID_LEN);
	if (h & RELM_EVF_EPOCH)
		put_uint(k, "epoch", ev->epoch);
	if (h & RELM_EVF_IPK)
		put_hex(k, "ipk", ev->ipk, RELM_SIGN_PK_LEN);
	if (h & RELM_EVF_MAILBOX)
		put_hex(k, "mailbox", ev->mailbox, RELM_SIGN_PK_LEN);
	/* not "seq": that is the event's own number in the same object */
	if (h & RELM_EVF_MBOX_SEQ)
		put_uint(k, "mailbox_seq", ev->mailbox_seq);
	if (h & RELM_EVF_ENVELOPE)
		put_hex(k, "envelope", ev->envelope, RELM_ID_LEN);
	if (h & RELM_EVF_CODE)
		put_str(k, "reason", relm_errname(ev->code));
	if (h & RELM_EVF_TABLE)
		put_str(k, "table", ev->table);
	if (h & RELM_EVF_ROW)
		put_uint(k, "row", ev->row);
}

char *relmd_event_json(struct relm_store *st, int64_t seq, uint64_t ts,
                       const struct relm_event *ev, size_t *len)
{
	struct relmd_evline w;
	struct sink k = { &w, NULL, 0 };
	char *line;

	relmd_evline_begin(&w, (uint64_t)seq, ev->type, ts);
	members(&k, st, ev);
	if ((line = relmd_evline_end(&w, len)) != NULL)
		return line;
	k.w = NULL;
	if (!(k.o = cJSON_CreateObject()))
		return NULL;
	members(&k, st, ev);
	line = k.bad ? NULL : relmd_event_line((uint64_t)seq, ev->type, ts, k.o);
	cJSON_Delete(k.o);
	if (line)
		*len = strlen(line);
	return line;
}
