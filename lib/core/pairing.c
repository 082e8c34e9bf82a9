/*
 * pairing.c — adding a device to a proton (proto/devices.md §12), both
 * sides, in lib/core: the `pairings` row is moved only by transition(),
 * every transition is one store step, and what it posts (JOIN, WELCOME,
 * REFUSE, the circle to siblings) is in that step's outbox.
 *
 *   E:  OFFERED ──JOIN ok──> WELCOMED ──expires──> (deleted)
 *   J:  JOINING ──WELCOME ok──> JOINED ──synced──> SYNCED
 *             └──REFUSE──> (deleted)
 *
 * E sends the bulk state (§12.6, bulk.c) in the step that commits the
 * WELCOME; J's `synced` moves its row to SYNCED (relm__core_pair_joined).
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/circle.h"
#include "wire/pairing.h"
#include "error.h"

/* J's device keys, kept in the row until it joins:
 * device_id(16) dsk(64) spk_id(4) spk_priv(32) mailbox_sk(64). */
enum { KEYS_LEN = 16 + 64 + 4 + 32 + 64 };

/* ---- the one transition function ---------------------------------------- */

static int transition(struct relm_core *c, struct relm_store_pairing *p, int to)
{
	static const struct { int role, from, to; } ok[] = {
		{ RELM_PAIR_ROLE_E, 0, RELM_PAIR_OFFERED },
		{ RELM_PAIR_ROLE_E, RELM_PAIR_OFFERED, RELM_PAIR_WELCOMED },
		{ RELM_PAIR_ROLE_E, RELM_PAIR_OFFERED, 0 },
		{ RELM_PAIR_ROLE_E, RELM_PAIR_WELCOMED, 0 },
		{ RELM_PAIR_ROLE_J, 0, RELM_PAIR_JOINING },
		{ RELM_PAIR_ROLE_J, RELM_PAIR_JOINING, RELM_PAIR_JOINED },
		{ RELM_PAIR_ROLE_J, RELM_PAIR_JOINING, 0 },
		{ RELM_PAIR_ROLE_J, RELM_PAIR_JOINED, RELM_PAIR_SYNCED },
		{ RELM_PAIR_ROLE_J, RELM_PAIR_JOINED, 0 },
		{ RELM_PAIR_ROLE_J, RELM_PAIR_SYNCED, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (ok[i].role == p->role && ok[i].from == p->state && ok[i].to == to)
			break;
	if (i == sizeof ok / sizeof ok[0])
		return RELM_ESTATE;
	if (to == 0)
		return relm_store_pairing_delete(c->st, p->id);
	p->state = to;
	return relm_store_pairing_put(c->st, p);
}

/* Post bytes to the pairing mailbox pk on host (no relationship). */
static int post_to(struct relm_core *c, const char *host, const uint8_t pk[RELM_SIGN_PK_LEN],
                   const uint8_t *buf, size_t len)
{
	struct relm_store_outbox o;
	struct relm_addr a;

	memset(&o, 0, sizeof o);
	if (relm_addr_parse(&a, host, strlen(host)) != 0)
		return RELM_EINVAL;
	memcpy(a.id, pk, RELM_SIGN_PK_LEN);
	a.has_id = 1;
	if (relm_addr_format(o.dest, sizeof o.dest, &a) < 0)
		return RELM_EINVAL;
	o.bytes = buf;
	o.len = len;
	o.created = relm__core_now(c);
	return relm_store_outbox_add(c->st, &o, NULL);
}

/* ---- E: begin ------------------------------------------------------------ */

int relm_core_pair_begin(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         char *code, size_t cap, uint64_t *expires)
{
	struct relm_store_pairing p;
	struct relm_pair_code pc;
	struct relm_pair_keys k;
	struct relm_store_proton pr;
	int rc, n;

	memset(&p, 0, sizeof p);
	memset(&pc, 0, sizeof pc);
	if ((rc = relm_store_proton_get(c->st, proton, &pr, 0)) != 0)
		return rc;
	relm_store_proton_clear(&pr);
	if ((rc = relm__core_writable(c, proton)) != 0)
		return rc;                   /* a removed device adds no device */
	relm__random(c->env, pc.secret, sizeof pc.secret);
	pc.expires_ms = relm__core_now(c) + RELM_PAIR_TTL_MS;
	snprintf(pc.host, sizeof pc.host, "%s", c->mailbox_host);
	if ((n = relm_pair_code_encode(code, cap, &pc)) < 0) {
		rc = n;
		goto out;
	}
	relm_pair_derive(&k, pc.secret);
	memcpy(p.id, k.id, RELM_ID_LEN);
	p.role = RELM_PAIR_ROLE_E;
	memcpy(p.secret, pc.secret, 32);
	p.expires = pc.expires_ms;
	memcpy(p.proton, proton, RELM_ID_LEN);
	p.has_proton = 1;
	snprintf(p.host, sizeof p.host, "%s", pc.host);
	memcpy(p.mailbox, k.mbox_e_pk, RELM_SIGN_PK_LEN);
	memcpy(p.mailbox_sk, k.mbox_e_sk, RELM_SIGN_SK_LEN);
	p.created = relm__core_now(c);
	if ((rc = relm_store_begin(c->st)) != 0)
		goto out;
	rc = relm__core_finish(c, transition(c, &p, RELM_PAIR_OFFERED));
	if (rc == 0 && expires)
		*expires = pc.expires_ms;
out:
	sodium_memzero(&pc, sizeof pc);
	sodium_memzero(&k, sizeof k);
	sodium_memzero(&p, sizeof p);
	return rc;
}

/* ---- E: a JOIN at M_E ---------------------------------------------------- */

static int refuse(struct relm_core *c, const struct relm_store_pairing *p, const struct relm_pair_keys *k,
                  const uint8_t jh[32], int code)
{
	uint8_t out[RELM_PAIR_REFUSE_LEN];

	relm_pair_refuse_encode(out, code, jh, k->mac);
	return post_to(c, p->host, k->mbox_j_pk, out, sizeof out);
}

/* The WELCOME for JOIN j (hash jh): the circle with J added, the proton's
 * keys; sealed with a fresh ephemeral.  *out malloc'd. */
static int welcome(struct relm_core *c, struct relm_store_pairing *p, const struct relm_pair_keys *k,
                   const struct relm_pair_join *j, const uint8_t jh[32], uint8_t **out, size_t *olen)
{
	struct relm_circle_device cd;
	struct relm_pair_welcome w;
	struct relm_store_proton pr;
	uint8_t *circle = NULL, e_priv[32], nonce[RELM_NONCE_LEN];
	size_t clen = 0;
	int rc;

	memset(&cd, 0, sizeof cd);
	memset(&w, 0, sizeof w);
	memcpy(cd.id, j->device_id, RELM_ID_LEN);
	memcpy(cd.dpk, j->dpk, RELM_SIGN_PK_LEN);
	memcpy(cd.label, j->label, sizeof cd.label);
	cd.invite = j->invite;
	if ((rc = relm__core_devices_load(c, p->proton)) != 0 ||
	    (rc = relm__core_device_add(c, p->proton, &cd, &circle, &clen, NULL)) != 0)
		return rc;
	if ((rc = relm_store_proton_get(c->st, p->proton, &pr, RELM_STORE_WITH_SECRETS)) != 0)
		goto out;
	memcpy(w.ipk_sk, pr.isk, RELM_SIGN_SK_LEN);
	memcpy(w.proton, p->proton, RELM_ID_LEN);
	snprintf(w.label, sizeof w.label, "%s", pr.label);
	memcpy(w.from_device, c->devs.self, RELM_ID_LEN);
	w.circle = circle;
	w.circle_len = clen;
	relm__random(c->env, e_priv, sizeof e_priv);
	relm__random(c->env, nonce, sizeof nonce);
	rc = relm_pair_welcome_seal(out, olen, &w, e_priv, j->eph, k->welcome, jh, nonce);
	relm_store_proton_clear(&pr);
out:
	sodium_memzero(e_priv, sizeof e_priv);   /* forward secrecy: E's half is gone */
	sodium_memzero(&w, sizeof w);
	free(circle);
	return rc;
}

static int held_circle_has(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const struct relm_pair_join *j, uint32_t *count)
{
	struct relm_circle *circ = malloc(sizeof *circ);
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch;
	int rc, found = 0;

	if (!circ)
		return RELM_ENOMEM;
	if ((rc = relm_store_circle_get(c->st, proton, &epoch, &buf, &len)) == 0 &&
	    (rc = relm_circle_decode(circ, buf, len)) == 0) {
		for (uint32_t i = 0; i < circ->count; i++)
			if (!memcmp(circ->dev[i].id, j->device_id, RELM_ID_LEN) ||
			    !sodium_memcmp(circ->dev[i].dpk, j->dpk, RELM_SIGN_PK_LEN))
				found = 1;
		*count = circ->count;
	}
	free(buf);
	free(circ);
	return rc ? rc : found;
}

/* A verdict on a JOIN from one who holds S: REFUSE posted, the JOIN
 * reported on M_E, nothing else changed (all in this step: returning the
 * verdict would roll the REFUSE back). */
static int refused(struct relm_core *c, const struct relm_store_pairing *p, const struct relm_pair_keys *k,
                   const uint8_t jh[32], int verdict, const uint8_t *mbox, uint64_t seq,
                   const uint8_t *buf, size_t len)
{
	int rc = refuse(c, p, k, jh, verdict);

	return rc ? rc : relm__core_report_bad(c, mbox, seq, NULL, buf, len, verdict);
}

static int e_join(struct relm_core *c, struct relm_store_pairing *p, const struct relm_pair_keys *k,
                  const uint8_t *mbox, uint64_t seq, const uint8_t *buf, size_t len)
{
	struct relm_pair_join j;
	uint8_t jh[32], *w = NULL;
	size_t wlen = 0;
	uint32_t count = 0;
	int rc, verdict = 0;

	rc = relm_pair_join_decode(&j, buf, len, k->mac);
	relm_pair_hash(jh, buf, len);
	if (rc == RELM_EBADSIG || rc == RELM_EBADKEY)   /* past the mac: the joiner holds S */
		return refused(c, p, k, jh, rc, mbox, seq, buf, len);
	if (rc != 0)
		return rc;                   /* not from one who holds S: no answer */
	if (p->state == RELM_PAIR_WELCOMED) {
		/* J retried: the same JOIN gets the stored WELCOME again; a code
		 * pairs one device */
		if (p->has_join_hash && sodium_memcmp(jh, p->join_hash, 32) == 0)
			return post_to(c, p->host, k->mbox_j_pk, p->message, p->message_len);
		verdict = RELM_EREPLAY;
	} else if (relm__core_now(c) >= p->expires) {
		verdict = RELM_EEXPIRED;
	} else if ((rc = held_circle_has(c, p->proton, &j, &count)) < 0) {
		return rc;
	} else if (rc == 1) {
		verdict = RELM_EEXIST;
	} else if (count >= RELM_MAX_DEVICES) {
		verdict = RELM_ELIMIT;
	}
	if (verdict)
		return refused(c, p, k, jh, verdict, mbox, seq, buf, len);
	if ((rc = welcome(c, p, k, &j, jh, &w, &wlen)) != 0)
		return rc;
	memcpy(p->join_hash, jh, 32);
	p->has_join_hash = 1;
	p->message = w;
	p->message_len = wlen;
	rc = transition(c, p, RELM_PAIR_WELCOMED);
	if (rc == 0)
		rc = post_to(c, p->host, k->mbox_j_pk, w, wlen);
	/* the new device's session opens, with everything it must hold */
	if (rc == 0)
		rc = relm__core_bulk_send(c, p->proton, j.device_id);
	return rc;
}

/* ---- J: join -------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* J's new device keys and its JOIN. */
static int make_join(struct relm_core *c, struct relm_store_pairing *p, const struct relm_pair_keys *k,
                     const char *label)
{
	struct relm_pair_join j;
	struct relm_addr a;
	uint8_t keys[KEYS_LEN], seed[32], dpk[32], dsk[64], mpk[32], msk[64], spk[32], join[RELM_PAIR_JOIN_MAX];
	uint32_t spk_id = 0;
	int rc = 0, n;

	memset(&j, 0, sizeof j);
	relm__random(c->env, j.device_id, RELM_ID_LEN);
	j.device_id[0] |= 1;                 /* never all zero */
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(dpk, dsk, seed);
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(mpk, msk, seed);
	relm__random(c->env, spk, sizeof spk);
	while (spk_id == 0)
		spk_id = relm__random_between(c->env, 1, 0xffffffffu);
	relm__random(c->env, p->eph, 32);
	p->has_eph = 1;
	memcpy(j.dpk, dpk, 32);
	relm_x25519_public(j.eph, p->eph);
	snprintf(j.label, sizeof j.label, "%s", label);
	j.invite.version = RELM_WIRE_VERSION;
	j.invite.flags = RELM_INVITE_F_MULTI;
	memcpy(j.invite.ipk, dpk, 32);
	j.invite.spk_id = spk_id;
	relm_x25519_public(j.invite.spk, spk);
	if (relm_addr_parse(&a, p->host, strlen(p->host)) != 0)
		rc = RELM_EINVAL;
	memcpy(a.id, mpk, 32);
	a.has_id = 1;
	if (rc == 0 && relm_addr_format(j.invite.mailbox, sizeof j.invite.mailbox, &a) < 0)
		rc = RELM_EINVAL;
	if (rc == 0)
		rc = relm_invite_sign(&j.invite, dsk);
	if (rc == 0 && (n = relm_pair_join_encode(join, sizeof join, &j, dsk, k->mac)) < 0)
		rc = n;
	if (rc == 0) {
		memcpy(keys, j.device_id, 16);
		memcpy(keys + 16, dsk, 64);
		put32(keys + 80, spk_id);
		memcpy(keys + 84, spk, 32);
		memcpy(keys + 116, msk, 64);
		if (!(p->keys = malloc(KEYS_LEN)) || !(p->message = malloc((size_t)n))) {
			rc = RELM_ENOMEM;
		} else {
			memcpy(p->keys, keys, KEYS_LEN);
			p->keys_len = KEYS_LEN;
			memcpy(p->message, join, (size_t)n);
			p->message_len = (size_t)n;
			snprintf(p->label, sizeof p->label, "%s", j.label);
		}
	}
	sodium_memzero(keys, sizeof keys);
	sodium_memzero(seed, sizeof seed);
	sodium_memzero(dsk, sizeof dsk);
	sodium_memzero(msk, sizeof msk);
	sodium_memzero(spk, sizeof spk);
	return rc;
}

int relm_core_pair_join(struct relm_core *c, const char *code, size_t len, const char *label,
                        uint8_t pairing[RELM_ID_LEN], uint8_t proton[RELM_ID_LEN])
{
	struct relm_pair_code pc;
	struct relm_pair_keys k;
	struct relm_store_pairing p;
	int rc;

	memset(&p, 0, sizeof p);
	if ((rc = relm_pair_code_decode(&pc, code, len, relm__core_now(c))) != 0)
		return rc;
	if (strcmp(pc.host, c->mailbox_host) != 0) {
		rc = RELM_EINVAL;            /* one mailbox server per proton (§12) */
		goto out;
	}
	relm_pair_derive(&k, pc.secret);
	memcpy(pairing, k.id, RELM_ID_LEN);
	if (c->refused_code && !memcmp(c->refused_pairing, k.id, RELM_ID_LEN)) {
		rc = c->refused_code;        /* this code was refused: asking again changes nothing */
		goto out;
	}
	if ((rc = relm_store_begin(c->st)) != 0)
		goto out;
	rc = relm_store_pairing_get(c->st, k.id, &p);
	if (rc == 0) {
		if (p.role != RELM_PAIR_ROLE_J)
			rc = RELM_EINVAL;        /* this daemon's own offer */
		else if (p.state == RELM_PAIR_JOINING)
			rc = post_to(c, p.host, k.mbox_e_pk, p.message, p.message_len);   /* resume */
		else
			memcpy(proton, p.proton, RELM_ID_LEN);
		rc = relm__core_finish(c, rc);
		if (rc == 0 && p.state == RELM_PAIR_JOINING)
			rc = RELM_EPENDING;      /* the WELCOME is awaited */
		goto out;
	}
	if (rc != RELM_ENOTFOUND) {
		relm__core_finish(c, rc);
		goto out;
	}
	memset(&p, 0, sizeof p);
	memcpy(p.id, k.id, RELM_ID_LEN);
	p.role = RELM_PAIR_ROLE_J;
	memcpy(p.secret, pc.secret, 32);
	p.expires = pc.expires_ms;
	snprintf(p.host, sizeof p.host, "%s", pc.host);
	memcpy(p.mailbox, k.mbox_j_pk, RELM_SIGN_PK_LEN);
	memcpy(p.mailbox_sk, k.mbox_j_sk, RELM_SIGN_SK_LEN);
	p.created = relm__core_now(c);
	rc = make_join(c, &p, &k, label ? label : "");
	if (rc == 0)
		rc = transition(c, &p, RELM_PAIR_JOINING);
	if (rc == 0)
		rc = post_to(c, p.host, k.mbox_e_pk, p.message, p.message_len);
	rc = relm__core_finish(c, rc);
	if (rc == 0)
		rc = RELM_EPENDING;
out:
	relm_store_pairing_clear(&p);
	sodium_memzero(&pc, sizeof pc);
	sodium_memzero(&k, sizeof k);
	return rc;
}

/* ---- J: a WELCOME or REFUSE at M_J ---------------------------------------- */

/* J holds the proton: its row, device keys, the circle and the rows that
 * follow it (device.added for each), in the open step. */
static int j_store(struct relm_core *c, struct relm_store_pairing *p, const struct relm_pair_welcome *w,
                   const struct relm_circle *circ)
{
	struct relm_store_proton pr;
	struct relm_store_device d;
	struct relm_store_device_keys dk;
	const uint8_t *keys = p->keys;
	int rc, i = relm_circle_find(circ, keys);

	memset(&pr, 0, sizeof pr);
	memcpy(pr.id, w->proton, RELM_ID_LEN);
	snprintf(pr.label, sizeof pr.label, "%s", w->label);
	memcpy(pr.ipk, circ->ipk, RELM_SIGN_PK_LEN);
	memcpy(pr.isk, w->ipk_sk, RELM_SIGN_SK_LEN);
	snprintf(pr.strategy, sizeof pr.strategy, "leaderless");
	pr.created = relm__core_now(c);
	memset(&d, 0, sizeof d);
	memcpy(d.proton, w->proton, RELM_ID_LEN);
	memcpy(d.device, keys, RELM_ID_LEN);
	snprintf(d.label, sizeof d.label, "%s", circ->dev[i].label);
	d.self = 1;
	memcpy(d.pk, circ->dev[i].dpk, RELM_SIGN_PK_LEN);
	memcpy(d.sk, keys + 16, RELM_SIGN_SK_LEN);
	d.has_sk = 1;
	d.epoch = circ->dev[i].added;
	d.added = relm__core_now(c);
	memset(&dk, 0, sizeof dk);
	memcpy(dk.proton, w->proton, RELM_ID_LEN);
	dk.spk_id = get32(keys + 80);
	memcpy(dk.spk_priv, keys + 84, 32);
	memcpy(dk.mailbox_sk, keys + 116, 64);
	memcpy(dk.mailbox_id, keys + 116 + 32, 32);       /* an Ed25519 sk ends with its pk */
	if ((rc = relm_store_proton_put(c->st, &pr)) == 0 &&
	    (rc = relm__core_proton_created(c, w->proton)) == 0 &&
	    (rc = relm_store_device_put(c->st, &d)) == 0 &&
	    (rc = relm_store_device_keys_put(c->st, &dk)) == 0 &&
	    (rc = relm_store_circle_put(c->st, w->proton, circ->epoch, w->circle, w->circle_len)) == 0)
		rc = relm__core_circle_follow(c, w->proton, circ);
	relm_store_proton_clear(&pr);
	relm_store_device_clear(&d);
	relm_store_device_keys_clear(&dk);
	return rc;
}

static int j_welcome(struct relm_core *c, struct relm_store_pairing *p, const struct relm_pair_keys *k,
                     const uint8_t *buf, size_t len)
{
	struct relm_pair_welcome w;
	struct relm_circle *circ = malloc(sizeof *circ);
	uint8_t jh[32], *pt = NULL, pk[32], inv[RELM_INVITE_BIN_MAX], mine[RELM_INVITE_BIN_MAX];
	struct relm_pair_join j;
	size_t ptlen = 0;
	int rc, i, n1, n2;

	if (!circ)
		return RELM_ENOMEM;
	relm_pair_hash(jh, p->message, p->message_len);
	if ((rc = relm_pair_welcome_open(&w, &pt, &ptlen, buf, len, p->eph, k->welcome, jh)) != 0)
		goto out;
	if ((rc = relm_circle_decode(circ, w.circle, w.circle_len)) != 0)
		goto out;
	crypto_sign_ed25519_sk_to_pk(pk, w.ipk_sk);
	/* J's own JOIN, to compare its device with the circle's entry */
	if ((rc = relm_pair_join_decode(&j, p->message, p->message_len, k->mac)) != 0) {
		rc = RELM_ESTATE;
		goto out;
	}
	i = relm_circle_find(circ, j.device_id);
	n1 = i >= 0 ? relm_invite_to_bin(inv, &circ->dev[i].invite) : -1;
	n2 = relm_invite_to_bin(mine, &j.invite);
	if (sodium_memcmp(pk, circ->ipk, 32) != 0 || i < 0 ||
	    sodium_memcmp(circ->dev[i].dpk, j.dpk, 32) != 0 || strcmp(circ->dev[i].label, j.label) != 0 ||
	    n1 < 0 || n1 != n2 || memcmp(inv, mine, (size_t)n1) != 0) {
		rc = RELM_EAUTH;             /* not the circle J asked to join */
		goto out;
	}
	if ((rc = j_store(c, p, &w, circ)) != 0)
		goto out;
	memcpy(p->proton, w.proton, RELM_ID_LEN);
	p->has_proton = 1;
	sodium_memzero(p->eph, 32);      /* e_J wiped: the WELCOME no longer opens */
	p->has_eph = 0;
	sodium_memzero(p->keys, p->keys_len);
	free(p->keys);
	p->keys = NULL;
	p->keys_len = 0;
	rc = transition(c, p, RELM_PAIR_JOINED);
	c->mailboxes_new = 1;            /* the device mailbox: siblings' sessions */
out:
	sodium_memzero(&w, sizeof w);
	relm_pair_buf_free(pt, ptlen);
	free(circ);
	return rc;
}

int relm__core_pair_envelope(struct relm_core *c, const uint8_t id[RELM_ID_LEN],
                             const uint8_t mailbox[RELM_SIGN_PK_LEN], uint64_t seq,
                             const uint8_t *buf, size_t len)
{
	struct relm_store_pairing p;
	struct relm_pair_keys k;
	int rc, type;

	if ((rc = relm_store_pairing_get(c->st, id, &p)) != 0)
		return rc;
	relm_pair_derive(&k, p.secret);
	type = relm_pair_type(buf, len);
	if (type < 0)
		rc = type;
	else if (p.role == RELM_PAIR_ROLE_E)
		rc = type == RELM_PAIR_JOIN ? e_join(c, &p, &k, mailbox, seq, buf, len) : RELM_EMALFORMED;
	else if (p.state != RELM_PAIR_JOINING)
		rc = 0;                      /* joined already: a late copy changes nothing */
	else if (type == RELM_PAIR_WELCOME)
		rc = j_welcome(c, &p, &k, buf, len);
	else if (type == RELM_PAIR_REFUSE) {
		uint8_t jh[32], want[32];
		int code = 0;
		if ((rc = relm_pair_refuse_decode(&code, jh, buf, len, k.mac)) == 0) {
			relm_pair_hash(want, p.message, p.message_len);
			rc = sodium_memcmp(jh, want, 32) == 0 ? 0 : RELM_EAUTH;
		}
		if (rc == 0)
			rc = transition(c, &p, 0);   /* ended: the call fails with code */
		if (rc == 0) {
			memcpy(c->refused_pairing, p.id, RELM_ID_LEN);
			c->refused_code = code < 0 ? code : RELM_EPROTO;
		}
	} else
		rc = RELM_EMALFORMED;
	relm_store_pairing_clear(&p);
	sodium_memzero(&k, sizeof k);
	return rc;
}

/* ---- status and expiry ---------------------------------------------------- */

int relm_core_pair_status(struct relm_core *c, const uint8_t pairing[RELM_ID_LEN],
                          uint8_t proton[RELM_ID_LEN])
{
	struct relm_store_pairing p;
	int rc;

	if ((rc = relm_store_pairing_get(c->st, pairing, &p)) == RELM_ENOTFOUND) {
		if (c->refused_code && !memcmp(c->refused_pairing, pairing, RELM_ID_LEN))
			return c->refused_code;
		return rc;
	}
	if (rc != 0)
		return rc;
	if (p.role != RELM_PAIR_ROLE_J)
		rc = RELM_EINVAL;
	else if (p.state == RELM_PAIR_JOINING)
		rc = relm__core_now(c) >= p.expires ? RELM_EEXPIRED : RELM_EPENDING;
	else
		memcpy(proton, p.proton, RELM_ID_LEN);
	relm_store_pairing_clear(&p);
	return rc;
}

/* ---- J: synced ------------------------------------------------------------ */

static int id_cb(void *ctx, const uint8_t id[RELM_ID_LEN]);

int relm__core_pair_joined(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], int synced)
{
	struct relm__ids ids = { 0 };
	int rc, found = 0;

	if ((rc = relm_store_pairing_ids(c->st, id_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0 && !found; i++) {
		struct relm_store_pairing p;
		if ((rc = relm_store_pairing_get(c->st, ids.v[i], &p)) != 0)
			break;
		if (p.role == RELM_PAIR_ROLE_J && p.state == RELM_PAIR_JOINED && p.has_proton &&
		    memcmp(p.proton, proton, RELM_ID_LEN) == 0) {
			found = 1;
			if (synced)
				rc = transition(c, &p, RELM_PAIR_SYNCED);
		}
		relm_store_pairing_clear(&p);
	}
out:
	free(ids.v);
	return rc ? rc : found;
}

static int id_cb(void *ctx, const uint8_t id[RELM_ID_LEN])
{
	return relm__ids_push(ctx, id);
}

int relm_core_pairings_expire(struct relm_core *c)
{
	struct relm__ids ids = { 0 };
	int rc;

	if ((rc = relm_store_pairing_ids(c->st, id_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++) {
		struct relm_store_pairing p;
		if ((rc = relm_store_pairing_get(c->st, ids.v[i], &p)) != 0)
			break;
		if (relm__core_now(c) >= p.expires && (rc = relm_store_begin(c->st)) == 0) {
			if (p.role == RELM_PAIR_ROLE_J && p.state == RELM_PAIR_JOINING) {
				memcpy(c->refused_pairing, p.id, RELM_ID_LEN);
				c->refused_code = RELM_EEXPIRED;
			}
			rc = relm__core_finish(c, transition(c, &p, 0));
		}
		relm_store_pairing_clear(&p);
	}
out:
	free(ids.v);
	return rc;
}
