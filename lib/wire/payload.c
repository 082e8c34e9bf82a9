/*
 * payload.c — the plaintext inside every envelope (payload.h,
 * proto/wire.md §6).
 *
 * Encoding is done by hand, not with cJSON_Print: the bytes must be
 * deterministic (fixed key order, one escaping rule, exact integers —
 * cJSON prints numbers through "%1.15g" with a tolerant round-trip check
 * that can change integers near 2^53), and writing straight into the
 * final buffer leaves no unwiped copy of a body behind.  The JSON is sized
 * in a first pass and written in a second, then padded with sodium_pad.
 *
 * Decoding unpads, then checks the remaining bytes before cJSON sees them:
 * no NUL byte, valid UTF-8, no "\u0000" escape (cJSON would cut a string
 * there).  cJSON must consume exactly those bytes.  Required fields must
 * appear exactly once with the right type; unknown fields are ignored and
 * unknown kinds are kept whole in raw.  Every string cJSON allocated is
 * wiped before the tree is freed: bodies are private.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>
#include "wire/payload.h"
#include "text.h"
#include "crypto/crypto.h"
#include "error.h"

#define TS_MAX 9007199254740992.0     /* 2^53: the largest exact JSON integer */

static const char *const kind_names[] = {
	[RELM_KIND_UNKNOWN]  = NULL,
	[RELM_KIND_TEXT]     = "text",
	[RELM_KIND_RECEIPT]  = "receipt",
	[RELM_KIND_HELLO]    = "hello",
	[RELM_KIND_HEAL]     = "heal",
	[RELM_KIND_IDENTITY] = "identity",
};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])

const char *relm_kind_name(enum relm_kind k)
{
	if ((unsigned)k >= NKINDS || kind_names[k] == NULL)
		return "unknown";
	return kind_names[k];
}

enum relm_kind relm_kind_from_name(const char *s)
{
	for (size_t k = 1; k < NKINDS; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return (enum relm_kind)k;
	return RELM_KIND_UNKNOWN;
}

static int kind_has_body(enum relm_kind k)
{
	return k == RELM_KIND_TEXT || k == RELM_KIND_HEAL || k == RELM_KIND_IDENTITY;
}

/* Mailbox strings: 1..255 bytes of printable ASCII without space (as in
 * invites). */
static int mailbox_ok(const char *m, size_t len)
{
	if (len == 0 || len > RELM_MAILBOX_ADDR_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)m[i] < 0x21 || (uint8_t)m[i] > 0x7e)
			return 0;
	return 1;
}

/* ---- encoding ------------------------------------------------------------ */

/* A writer that only counts when p is NULL (first pass). */
struct jw {
	uint8_t *p;
	size_t len;
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->p)
		memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

static void jw_u64(struct jw *w, uint64_t v)
{
	char d[20];
	size_t n = 0;

	do {
		d[sizeof d - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	jw_raw(w, d + sizeof d - n, n);
}

static void jw_hex(struct jw *w, const uint8_t *b, size_t n)
{
	char hex[2 * RELM_KEY_LEN + 1];

	relm_hex(hex, b, n);
	jw_raw(w, hex, 2 * n);
}

/* A JSON string: escapes " \ and every byte < 0x20 (\b \f \n \r \t, else
 * \u00xx, lowercase); all other bytes, UTF-8 included, are copied as is. */
/* Eight bytes none of which JSON escapes: no byte < 0x20, none '"' or
 * '\\' (bytes of UTF-8 sequences pass). */
static int jw_plain8(const char *s)
{
	uint64_t v = relm_w8_load(s);
	return (relm_w8_below(v, 0x20) | relm_w8_equal(v, '"') | relm_w8_equal(v, '\\')) == 0;
}

static void jw_str(struct jw *w, const char *s, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	size_t run = 0;

	jw_raw(w, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		uint8_t c;

		while (n - i >= 8 && jw_plain8(s + i))   /* text: eight bytes a turn */
			i += 8;
		if (i == n)
			break;
		c = (uint8_t)s[i];
		char e[6] = { '\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15] };

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;                /* copied with its run below */
		jw_raw(w, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':  jw_raw(w, "\\\"", 2); break;
		case '\\': jw_raw(w, "\\\\", 2); break;
		case '\b': jw_raw(w, "\\b", 2); break;
		case '\f': jw_raw(w, "\\f", 2); break;
		case '\n': jw_raw(w, "\\n", 2); break;
		case '\r': jw_raw(w, "\\r", 2); break;
		case '\t': jw_raw(w, "\\t", 2); break;
		default:   jw_raw(w, e, sizeof e); break;
		}
	}
	jw_raw(w, s + run, n - run);
	jw_raw(w, "\"", 1);
}

static void payload_json(struct jw *w, const struct relm_payload *p)
{
	jw_lit(w, "{\"id\":\"");
	jw_hex(w, p->id, RELM_ID_LEN);
	jw_lit(w, "\",\"kind\":\"");
	jw_lit(w, relm_kind_name(p->kind));
	jw_lit(w, "\",\"ts\":");
	jw_u64(w, p->ts);
	if (kind_has_body(p->kind)) {
		jw_lit(w, ",\"body\":");
		jw_str(w, p->body, p->body_len);
	} else if (p->kind == RELM_KIND_RECEIPT) {
		jw_lit(w, ",\"acks\":[");
		for (size_t i = 0; i < p->nacks; i++) {
			jw_lit(w, i ? ",{\"id\":\"" : "{\"id\":\"");
			jw_hex(w, p->acks[i].id, RELM_ID_LEN);
			jw_lit(w, "\",\"dh\":\"");
			jw_hex(w, p->acks[i].dh, RELM_KEY_LEN);
			jw_lit(w, "\",\"n\":");
			jw_u64(w, p->acks[i].n);
			jw_lit(w, "}");
		}
		jw_lit(w, "]");
	} else if (p->kind == RELM_KIND_HELLO) {
		jw_lit(w, ",\"mailbox\":");
		jw_str(w, p->mailbox, strlen(p->mailbox));
	}
	jw_lit(w, "}");
}

static int payload_check(const struct relm_payload *p)
{
	if (p->kind == RELM_KIND_UNKNOWN || (unsigned)p->kind >= NKINDS)
		return RELM_EINVAL;
	if (p->ts > (UINT64_C(1) << 53))
		return RELM_EINVAL;
	if (kind_has_body(p->kind)) {
		if (p->body == NULL)
			return RELM_EINVAL;
		if (p->body_len > RELM_BODY_MAX)
			return RELM_ETOOBIG;
		if (!relm_text_ok(p->body, p->body_len))
			return RELM_EINVAL;
	}
	if (p->kind == RELM_KIND_RECEIPT &&
	    (p->nacks > RELM_MAX_ACKS || (p->nacks > 0 && p->acks == NULL)))
		return RELM_EINVAL;
	if (p->kind == RELM_KIND_HELLO &&
	    (p->mailbox == NULL || !mailbox_ok(p->mailbox, strnlen(p->mailbox, RELM_MAILBOX_ADDR_MAX + 1))))
		return RELM_EINVAL;
	return 0;
}

int relm_payload_encode(uint8_t **out, size_t *outlen, const struct relm_payload *p)
{
	struct jw w = { NULL, 0 };
	size_t padded = 0, cap;
	uint8_t *buf;
	int err;

	if ((err = payload_check(p)) != 0)
		return err;
	payload_json(&w, p);                               /* pass 1: size */
	/* sodium_pad always adds at least one byte (0x80). */
	cap = (w.len / RELM_PAD_BLOCK + 1) * RELM_PAD_BLOCK;
	if (cap > RELM_PAYLOAD_MAX)
		return RELM_ETOOBIG;
	if ((buf = malloc(cap)) == NULL)
		return RELM_ENOMEM;
	w.p = buf;
	w.len = 0;
	payload_json(&w, p);                               /* pass 2: write */
	if (sodium_pad(&padded, buf, w.len, RELM_PAD_BLOCK, cap) != 0 || padded != cap) {
		relm_payload_buf_free(buf, cap);               /* cannot happen */
		return RELM_EINVAL;
	}
	*out = buf;
	*outlen = cap;
	return 0;
}

void relm_payload_buf_free(uint8_t *buf, size_t len)
{
	if (buf == NULL)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

/* ---- decoding ------------------------------------------------------------ */

/* Wipe every string of a cJSON tree, then free it.  Depth is bounded by
 * cJSON's CJSON_NESTING_LIMIT (1000), so recursion is safe. */
static void json_wipe(cJSON *j)
{
	for (; j != NULL; j = j->next) {
		if (j->valuestring)
			sodium_memzero(j->valuestring, strlen(j->valuestring));
		if (j->string)
			sodium_memzero(j->string, strlen(j->string));
		json_wipe(j->child);
	}
}

static void json_free(cJSON *j)
{
	json_wipe(j);
	cJSON_Delete(j);
}

/* The member called name, or NULL if it is absent or appears more than
 * once (duplicate keys would let two parsers read two different payloads). */
static const cJSON *member(const cJSON *obj, const char *name)
{
	const cJSON *found = NULL;

	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		if (c->string != NULL && strcmp(c->string, name) == 0) {
			if (found != NULL)
				return NULL;
			found = c;
		}
	}
	return found;
}

static const char *member_str(const cJSON *obj, const char *name)
{
	const cJSON *c = member(obj, name);

	return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* An integer member in [0, max]; -1 if absent, mistyped, fractional or out
 * of range.  Numbers are read as doubles: cJSON's valueint saturates. */
static int member_uint(uint64_t *out, const cJSON *obj, const char *name, double max)
{
	const cJSON *c = member(obj, name);
	double d;

	if (!cJSON_IsNumber(c))
		return -1;
	d = c->valuedouble;
	/* NaN fails the range test; in range, the cast is defined and exact
	 * for integers (max ≤ 2^53), so a round trip detects fractions. */
	if (!(d >= 0 && d <= max) || (double)(uint64_t)d != d)
		return -1;
	*out = (uint64_t)d;
	return 0;
}

/* Exactly 2*len lowercase hex digits. */
static int member_hex(uint8_t *out, size_t len, const cJSON *obj, const char *name)
{
	const char *s = member_str(obj, name);

	if (s == NULL || strlen(s) != 2 * len)
		return -1;
	for (size_t i = 0; i < 2 * len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	return relm_unhex(out, len, s, 2 * len) == 0 ? 0 : -1;
}

/* A "\u0000" escape would put a NUL inside a cJSON string.  A backslash
 * can only occur inside strings in valid JSON, so pairing backslashes
 * from the left is enough to find the real escapes. */
static int has_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		i++;   /* skip the escaped character */
	}
	return 0;
}

static char *dup_str(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d != NULL) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

static int decode_acks(struct relm_payload *p, const cJSON *root)
{
	const cJSON *arr = member(root, "acks"), *a;
	size_t n = 0;

	if (!cJSON_IsArray(arr))
		return RELM_EMALFORMED;
	for (a = arr->child; a != NULL; a = a->next)
		if (++n > RELM_MAX_ACKS)
			return RELM_EMALFORMED;
	if (n == 0)
		return 0;
	if ((p->acks = calloc(n, sizeof *p->acks)) == NULL)
		return RELM_ENOMEM;
	p->nacks = n;
	n = 0;
	for (a = arr->child; a != NULL; a = a->next, n++) {
		uint64_t v;

		if (!cJSON_IsObject(a) ||
		    member_hex(p->acks[n].id, RELM_ID_LEN, a, "id") != 0 ||
		    member_hex(p->acks[n].dh, RELM_KEY_LEN, a, "dh") != 0 ||
		    member_uint(&v, a, "n", 4294967295.0) != 0)
			return RELM_EMALFORMED;
		p->acks[n].n = (uint32_t)v;
	}
	return 0;
}

static int decode_fields(struct relm_payload *p, const cJSON *root)
{
	const char *s;
	size_t n;

	if (!cJSON_IsObject(root))
		return RELM_EMALFORMED;
	if (member_hex(p->id, RELM_ID_LEN, root, "id") != 0)
		return RELM_EMALFORMED;
	if ((s = member_str(root, "kind")) == NULL || (n = strlen(s)) == 0 ||
	    n >= sizeof p->kind_str)
		return RELM_EMALFORMED;
	memcpy(p->kind_str, s, n + 1);
	p->kind = relm_kind_from_name(p->kind_str);
	if (member_uint(&p->ts, root, "ts", TS_MAX) != 0)
		return RELM_EMALFORMED;

	if (kind_has_body(p->kind)) {
		if ((s = member_str(root, "body")) == NULL)
			return RELM_EMALFORMED;
		n = strlen(s);
		/* The whole input was checked as UTF-8, and cJSON only writes
		 * valid UTF-8 for \u escapes; checked again as it is cheap. */
		if (n > RELM_BODY_MAX || !relm_text_ok(s, n))
			return RELM_EMALFORMED;
		if ((p->body = dup_str(s, n)) == NULL)
			return RELM_ENOMEM;
		p->body_len = n;
	} else if (p->kind == RELM_KIND_RECEIPT) {
		return decode_acks(p, root);
	} else if (p->kind == RELM_KIND_HELLO) {
		if ((s = member_str(root, "mailbox")) == NULL ||
		    !mailbox_ok(s, n = strnlen(s, RELM_MAILBOX_ADDR_MAX + 1)))
			return RELM_EMALFORMED;
		if ((p->mailbox = dup_str(s, n)) == NULL)
			return RELM_ENOMEM;
	}
	return 0;
}

int relm_payload_decode(struct relm_payload *out, const uint8_t *buf, size_t len)
{
	size_t jlen = 0;

	memset(out, 0, sizeof *out);
	if (len > RELM_PAYLOAD_MAX)
		return RELM_ETOOBIG;
	if (len == 0 || len % RELM_PAD_BLOCK != 0 ||
	    sodium_unpad(&jlen, buf, len, RELM_PAD_BLOCK) != 0 || jlen == 0)
		return RELM_EMALFORMED;
	return relm_payload_decode_json(out, buf, jlen);
}

int relm_payload_decode_json(struct relm_payload *out, const uint8_t *buf, size_t jlen)
{
	struct relm_payload p;
	cJSON *root = NULL;
	const char *end = NULL;
	int err;

	memset(&p, 0, sizeof p);
	if (jlen == 0 || jlen > RELM_PAYLOAD_MAX) {
		err = jlen ? RELM_ETOOBIG : RELM_EMALFORMED;
		goto fail;
	}
	/* raw doubles as cJSON's input: a NUL-terminated copy of exactly the
	 * unpadded bytes. */
	if (!relm_text_ok(buf, jlen) || has_nul_escape((const char *)buf, jlen)) {
		err = RELM_EMALFORMED;
		goto fail;
	}
	if ((p.raw = dup_str((const char *)buf, jlen)) == NULL) {
		err = RELM_ENOMEM;
		goto fail;
	}
	p.raw_len = jlen;
	root = cJSON_ParseWithLengthOpts(p.raw, jlen, &end, 0);
	if (root == NULL || end != p.raw + jlen) {
		err = RELM_EMALFORMED;
		goto fail;
	}
	if ((err = decode_fields(&p, root)) != 0)
		goto fail;
	json_free(root);
	*out = p;
	return 0;

	/* Doubt: when cJSON itself fails half-way it frees what it had built
	 * without wiping, so a malformed payload may leave a string in freed
	 * heap.  Such a payload authenticated, so it is the sender's own
	 * content; wiping it would need global cJSON hooks, which the daemon's
	 * JSON-RPC code shares. */

fail:
	json_free(root);
	relm_payload_clear(&p);
	memset(out, 0, sizeof *out);
	return err;
}

void relm_payload_clear(struct relm_payload *p)
{
	if (p == NULL)
		return;
	if (p->body) {
		sodium_memzero(p->body, p->body_len);
		free(p->body);
	}
	if (p->acks) {
		sodium_memzero(p->acks, p->nacks * sizeof *p->acks);
		free(p->acks);
	}
	if (p->mailbox) {
		sodium_memzero(p->mailbox, strlen(p->mailbox));
		free(p->mailbox);
	}
	if (p->raw) {
		sodium_memzero(p->raw, p->raw_len);
		free(p->raw);
	}
	sodium_memzero(p, sizeof *p);
}
