/*
 * check_pairing.c — pairing through the programs (proto/devices.md §12,
 * proto/api.md device.pair.*): relm-mailbox and relmd processes on
 * loopback.  alice's relmd (A) offers a code; a fresh relmd (J) joins
 * with it — both killed with SIGKILL after J's JOIN was posted, restarted,
 * the same code resumes; both then list the same two devices.  The code
 * again on a third relmd is refused (replay), through relmctl, whose
 * `device pair` also draws the code as a QR code that zbarimg reads back; junk codes,
 * an expired code and another mailbox server are refused before anything
 * is stored; a mistyped secret (the code carries no checksum, §12.1)
 * names mailboxes nobody reads: `relmctl device join` gives up with
 * `timeout`, and the real code still pairs afterwards; the circle does
 * not change.  The bulk state (§12.6): alice (A) and bob (B, the daemon
 * K) exchange a few messages; the tablet (J) pairs with `relmctl device
 * join`, lists the relationship with its history, receives bob's next
 * message, and bob receives the tablet's message once; alice's first
 * device gets a `message.sent` of origin `sibling` for it, the tablet one
 * of origin `self`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include <sodium.h>
#include <cjson/cJSON.h>
#include "util_daemon.h"
#include "util_rand.h"
#include "wire/pairing.h"

static char dir[256];
static struct td_mbox mb, mb2;
static struct td_relmd A, J, K, X;

static void setup(void)
{
	td_base_new("pairing");
	td_dir_new(dir, sizeof dir);
	ck_assert_int_eq(td_mbox_start(&mb, dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&A, dir, "alice", mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&J, dir, "tablet", mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&K, dir, "phone", mb.port), 0);
}

static void teardown(void)
{
	td_kill_all();
	td_base_free();
}

static const char *data_code(const cJSON *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "data"), "code");
	return cJSON_IsString(c) ? c->valuestring : "";
}

/* device.pair.join on d until it answers other than `pending` (20 s at
 * most): the reply. */
static cJSON *join_until(struct td_relmd *d, const char *code, const char *label)
{
	for (int i = 0; i < 100; i++) {
		cJSON *r = td_callf(d->sock, "device.pair.join", "{\"code\":\"%s\",\"label\":\"%s\"}", code, label);
		ck_assert_ptr_nonnull(r);
		if (strcmp(data_code(r), "pending") != 0)
			return r;
		cJSON_Delete(r);
		usleep(200 * 1000);
	}
	ck_abort_msg("device.pair.join still pending after 20 s");
	return NULL;
}

/* `relmctl device join code --label label` on d, waiting wait_ms at most
 * (RELM_PAIR_WAIT_MS): its exit status, stdout into out, stderr into err. */
static int relmctl_join(struct td_relmd *d, const char *code, const char *label, const char *wait_ms,
                        char *out, size_t outn, char *err, size_t errn)
{
	char prog[512], c[1100], l[80];
	char *argv[] = { prog, "--socket", d->sock, "device", "join", c, "--label", l, NULL };

	td_prog(prog, sizeof prog, "relmctl");
	snprintf(c, sizeof c, "%s", code);
	snprintf(l, sizeof l, "%s", label);
	setenv("RELM_PAIR_WAIT_MS", wait_ms, 1);
	return td_run(argv, out, outn, err, errn, atoi(wait_ms) + 10000);
}

/* The devices d lists for proton: how many, and the self one's label. */
static int devices(struct td_relmd *d, const char *proton, char *self_label, size_t n)
{
	cJSON *r = td_must(d->sock, "device.list", "{\"proton\":\"%s\"}", proton);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(td_res(r), "devices"), *it;
	int count = 0;

	cJSON_ArrayForEach(it, arr) {
		count++;
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "self")) && self_label)
			snprintf(self_label, n, "%s", cJSON_GetObjectItemCaseSensitive(it, "label")->valuestring);
	}
	cJSON_Delete(r);
	return count;
}

/* The QR code in relmctl's text output (block characters, two rows of
 * modules per line, qr_text.c) drawn into a PBM image, 4 pixels per
 * module, and read back with zbarimg (zbar-tools, installed with the browser test's
 * packages): what it holds, in text. */
static void qr_read(const char *out, char *text, size_t cap)
{
	static const char *glyph[4] = { " ", "\u2584", "\u2580", "\u2588" };
	static unsigned char rows[512][256];
	char pbm[300], err[512];
	int h = 0, w = 0;

	for (const char *l = out; *l && h < 510; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		int x = 0, bits = -1;
		const char *p = l;
		while (*p && *p != '\n' && x < 256) {
			for (bits = 3; bits >= 0; bits--)
				if (!strncmp(p, glyph[bits], strlen(glyph[bits])))
					break;
			if (bits < 0)
				break;
			rows[h][x] = (unsigned char)(bits >> 1);
			rows[h + 1][x++] = (unsigned char)(bits & 1);
			p += strlen(glyph[bits]);
		}
		if (bits >= 0 && x > 20 && (*p == '\n' || !*p)) {
			ck_assert(w == 0 || w == x);
			w = x;
			h += 2;
		}
	}
	ck_assert_msg(w > 20 && h > 20, "no QR code in: %s", out);
	snprintf(pbm, sizeof pbm, "%s/qr.pbm", dir);
	FILE *f = fopen(pbm, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "P1\n%d %d\n", w * 4, h * 4);
	for (int y = 0; y < h * 4; y++) {
		for (int x = 0; x < w * 4; x++)
			fputs(rows[y / 4][x / 4] ? "1 " : "0 ", f);
		fputc('\n', f);
	}
	ck_assert_int_eq(fclose(f), 0);
	char *argv[] = { "/usr/bin/zbarimg", "--raw", "-q", pbm, NULL };
	ck_assert_msg(td_run(argv, text, cap, err, sizeof err, 10000) == 0, "zbarimg: %s", err);
	text[strcspn(text, "\n")] = '\0';
}

START_TEST(test_pair_two_commands)
{
	char proton[33], code[1100], label[80], out[16384], err[1024], prog[512];
	uint64_t expires_at = 0;
	cJSON *r;

	r = td_must(A.sock, "proton.create", "{\"label\":\"alice\"}");
	snprintf(proton, sizeof proton, "%s", cJSON_GetObjectItemCaseSensitive(td_res(r), "proton")->valuestring);
	cJSON_Delete(r);

	/* relmctl device pair PROTON prints the code */
	td_prog(prog, sizeof prog, "relmctl");
	{
		char *argv[] = { prog, "--socket", A.sock, "--json", "device", "pair", proton, NULL };
		ck_assert_int_eq(td_run(argv, out, sizeof out, err, sizeof err, 10000), 0);
		r = cJSON_Parse(out);
		ck_assert_ptr_nonnull(r);
		snprintf(code, sizeof code, "%s", cJSON_GetObjectItemCaseSensitive(r, "code")->valuestring);
		ck_assert_int_eq(strncmp(code, "relm-pair:", 10), 0);
		expires_at = (uint64_t)cJSON_GetObjectItemCaseSensitive(r, "expires_at")->valuedouble;
		ck_assert_uint_gt(expires_at, 0);
		cJSON_Delete(r);
	}
	/* and, as text, a QR code of it for a phone camera */
	{
		char *argv[] = { prog, "--socket", A.sock, "device", "pair", proton, NULL };
		char shown[1100] = "", read[1100] = "";
		ck_assert_int_eq(td_run(argv, out, sizeof out, err, sizeof err, 10000), 0);
		ck_assert_int_eq(sscanf(out, "code: %1099s", shown), 1);
		ck_assert_int_eq(strncmp(shown, "relm-pair:", 10), 0);
		ck_assert_str_ne(shown, code);         /* a fresh code each time */
		qr_read(out, read, sizeof read);
		ck_assert_str_eq(read, shown);
	}

	/* bad codes: refused before anything is stored */
	r = td_call(J.sock, "device.pair.join", "{\"code\":\"relm-pair:%%%\"}");
	ck_assert_str_eq(data_code(r), "malformed");
	cJSON_Delete(r);
	r = td_call(J.sock, "device.pair.join", "{\"code\":\"relm-pai\"}");
	ck_assert_str_eq(data_code(r), "truncated");
	cJSON_Delete(r);
	/* a relmd of another mailbox server */
	ck_assert_int_eq(td_mbox_start(&mb2, dir, "mbox2", 0), 0);
	ck_assert_int_eq(td_relmd_start(&X, dir, "elsewhere", mb2.port), 0);
	r = td_callf(X.sock, "device.pair.join", "{\"code\":\"%s\"}", code);
	ck_assert_str_eq(data_code(r), "invalid_argument");
	cJSON_Delete(r);

	/* an expired code: this one with its expiry (the API's expires_at)
	 * moved back by RELM_PAIR_TTL_MS, to when it was made — the code as a
	 * joiner sees it ten minutes on: refused before anything is stored or
	 * posted */
	{
		struct relm_pair_code pc;
		char expired[RELM_PAIR_CODE_MAX];
		ck_assert_int_eq(relm_pair_code_decode(&pc, code, strlen(code), 0), 0);
		ck_assert_uint_eq(pc.expires_ms, expires_at);
		pc.expires_ms = expires_at - RELM_PAIR_TTL_MS;
		ck_assert_int_gt(relm_pair_code_encode(expired, sizeof expired, &pc), 0);
		sodium_memzero(&pc, sizeof pc);
		ck_assert_int_eq(relmctl_join(&J, expired, "tablet", "20000", out, sizeof out, err, sizeof err), 1);
		ck_assert_msg(strstr(err, "(expired)") != NULL, "relmctl said: %s", err);
	}

	/* a mistyped secret: one character of S changed, still a well-formed
	 * code (nothing checks S but the MAC at the existing device), naming
	 * pairing mailboxes nobody reads — the JOIN is posted and stored,
	 * nobody answers, relmctl gives up with `timeout` and the call stays
	 * `pending` until the code expires */
	{
		struct relm_pair_code pc, typo_pc;
		char typo[1100];
		size_t at = strlen(code) - 20;       /* inside S: its last 32 bytes are the last 43 characters */
		snprintf(typo, sizeof typo, "%s", code);
		typo[at] = typo[at] == 'A' ? 'B' : 'A';
		ck_assert_int_eq(relm_pair_code_decode(&pc, code, strlen(code), 0), 0);
		ck_assert_int_eq(relm_pair_code_decode(&typo_pc, typo, strlen(typo), 0), 0);
		ck_assert_str_eq(typo_pc.host, pc.host);
		ck_assert_uint_eq(typo_pc.expires_ms, pc.expires_ms);
		ck_assert_int_ne(memcmp(typo_pc.secret, pc.secret, sizeof pc.secret), 0);
		sodium_memzero(&pc, sizeof pc);
		sodium_memzero(&typo_pc, sizeof typo_pc);
		ck_assert_int_eq(relmctl_join(&J, typo, "tablet", "400", out, sizeof out, err, sizeof err), 1);
		ck_assert_msg(strstr(err, "(timeout)") != NULL, "relmctl said: %s", err);
		r = td_callf(J.sock, "device.pair.join", "{\"code\":\"%s\"}", typo);
		ck_assert_str_eq(data_code(r), "pending");
		cJSON_Delete(r);
		ck_assert_int_eq(devices(&A, proton, NULL, 0), 1);
	}

	/* J joins; both daemons killed right after J's JOIN was posted —
	 * before or after A accepted it, whichever came first — restarted,
	 * and the same code resumes */
	r = td_callf(J.sock, "device.pair.join", "{\"code\":\"%s\",\"label\":\"tablet\"}", code);
	ck_assert_str_eq(data_code(r), "pending");
	cJSON_Delete(r);
	td_stop(&J.pid, SIGKILL, 5000);
	td_stop(&A.pid, SIGKILL, 5000);
	ck_assert_int_eq(J.pid, 0);
	ck_assert_int_eq(A.pid, 0);
	ck_assert_int_eq(td_relmd_restart(&A), 0);
	ck_assert_int_eq(td_relmd_restart(&J), 0);
	r = join_until(&J, code, "tablet");
	ck_assert_msg(cJSON_GetObjectItemCaseSensitive(r, "result") != NULL, "join: %s", data_code(r));
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(td_res(r), "proton")->valuestring, proton);
	cJSON_Delete(r);
	ck_assert_int_eq(devices(&A, proton, label, sizeof label), 2);
	ck_assert_int_eq(devices(&J, proton, label, sizeof label), 2);
	ck_assert_str_eq(label, "tablet");

	/* the same code on a third daemon, through relmctl: replay */
	ck_assert_int_eq(relmctl_join(&K, code, "phone", "20000", out, sizeof out, err, sizeof err), 1);
	ck_assert_msg(strstr(err, "(replay)") != NULL, "relmctl said: %s", err);
	ck_assert_int_eq(devices(&A, proton, NULL, 0), 2);
	ck_assert_int_eq(devices(&J, proton, NULL, 0), 2);
}
END_TEST


/* ---- the bulk state (proto/devices.md §12.6) ------------------------------- */

struct msgs_want {
	const char *sock, *rel, *body;
	int n;                        /* at least this many messages */
};

/* How many messages d's message.list of rel has, and how many of them
 * have body (NULL: none counted). */
static int msgs_count(const char *sock, const char *rel, const char *body, int *with_body)
{
	cJSON *r = td_callf(sock, "message.list", "{\"relationship\":\"%s\",\"limit\":100}", rel);
	const cJSON *arr, *it;
	int n = 0;

	if (with_body)
		*with_body = 0;
	if (!r || !cJSON_GetObjectItemCaseSensitive(r, "result")) {
		cJSON_Delete(r);
		return -1;
	}
	arr = cJSON_GetObjectItemCaseSensitive(td_res(r), "messages");
	cJSON_ArrayForEach(it, arr) {
		n++;
		if (body && with_body && strcmp(td_str(it, "body"), body) == 0)
			(*with_body)++;
	}
	cJSON_Delete(r);
	return n;
}

static int has_msgs(void *arg)
{
	struct msgs_want *w = arg;
	int with = 0, n = msgs_count(w->sock, w->rel, w->body, &with);
	return n >= w->n && (!w->body || with > 0);
}

static void wait_msgs(const char *sock, const char *rel, int n, const char *body)
{
	struct msgs_want w = { sock, rel, body, n };
	ck_assert_msg(td_wait(has_msgs, &w, 20000), "%s: no %d messages with \"%s\" in %s after 20 s",
	              sock, n, body ? body : "", rel);
}

static void send_msg(const char *sock, const char *rel, const char *body)
{
	cJSON *r = td_must(sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", rel, body);
	cJSON_Delete(r);
}

/* d lists relationship rel of proton: 1, else 0. */
static int lists_rel(struct td_relmd *d, const char *proton, const char *rel)
{
	cJSON *r = td_callf(d->sock, "relationship.list", "{\"proton\":\"%s\"}", proton);
	const cJSON *it;
	int found = 0;

	if (r && cJSON_GetObjectItemCaseSensitive(r, "result"))
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships"))
			found += strcmp(td_str(it, "relationship"), rel) == 0;
	cJSON_Delete(r);
	return found;
}

struct rel_want {
	struct td_relmd *d;
	const char *proton, *rel;
};

static int has_rel(void *arg)
{
	struct rel_want *w = arg;
	return lists_rel(w->d, w->proton, w->rel);
}

/* The events that arrive on c (subscribed to them) within ms, each one's
 * params given to check (which asserts what they must hold): how many. */
static int events_within(struct td_conn *c, int ms, void (*check)(const cJSON *params, const void *arg),
                         const void *arg)
{
	long long until = td_now_ms() + ms;
	int n = 0;

	for (;;) {
		long long left = until - td_now_ms();
		cJSON *e = left > 0 ? td_conn_read(c, (int)left) : NULL;
		if (!e)
			return n;
		if (strcmp(td_str(e, "method"), "event") == 0) {
			check(cJSON_GetObjectItemCaseSensitive(e, "params"), arg);
			n++;
		}
		cJSON_Delete(e);
	}
}

/* A device.synced of proton (arg). */
static void is_synced(const cJSON *p, const void *arg)
{
	ck_assert_str_eq(td_str(p, "type"), "device.synced");
	ck_assert_str_eq(td_str(p, "proton"), (const char *)arg);
}

struct sent_want {
	const char *rel, *body, *origin;
};

/* A message.sent of rel with body, of origin (a struct sent_want). */
static void is_sent(const cJSON *p, const void *arg)
{
	const struct sent_want *w = arg;
	ck_assert_str_eq(td_str(p, "type"), "message.sent");
	ck_assert_str_eq(td_str(p, "relationship"), w->rel);
	ck_assert_str_eq(td_str(p, "body"), w->body);
	ck_assert_str_eq(td_str(p, "origin"), w->origin);
}

static void subscribe_sent(struct td_conn *c, const char *sock)
{
	cJSON *r;
	ck_assert_int_eq(td_conn_open(c, sock), 0);
	r = td_conn_call(c, "subscribe", "{\"events\":[\"message.sent\"]}", NULL);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	cJSON_Delete(r);
}

START_TEST(test_bulk_state)
{
	struct td_conn ev, sent_a, sent_j;
	char pa[33], pb[33], rel[33], code[1100], out[1024], err[1024], shown_proton[33], shown_device[33];
	char label[80];
	struct rel_want rw = { &J, pa, rel };
	int with = 0, n;
	cJSON *r;

	td_relate(A.sock, K.sock, pa, pb, rel, 20000);
	send_msg(A.sock, rel, "a1");
	wait_msgs(K.sock, rel, 2, "a1");          /* bob's hello, a1 */
	send_msg(K.sock, rel, "b1");
	wait_msgs(A.sock, rel, 3, "b1");
	send_msg(A.sock, rel, "a2");
	wait_msgs(K.sock, rel, 4, "a2");
	n = msgs_count(A.sock, rel, NULL, NULL);
	ck_assert_int_eq(n, 4);

	r = td_must(A.sock, "device.pair.begin", "{\"proton\":\"%s\"}", pa);
	snprintf(code, sizeof code, "%s", td_str(td_res(r), "code"));
	cJSON_Delete(r);
	/* the tablet joins with relmctl, which waits for the WELCOME and
	 * prints the proton and this device */
	ck_assert_msg(relmctl_join(&J, code, "tablet", "20000", out, sizeof out, err, sizeof err) == 0,
	              "relmctl device join: %s", err);
	ck_assert_msg(sscanf(out, "proton %32s device %32s", shown_proton, shown_device) == 2,
	              "relmctl device join printed: %s", out);
	ck_assert_str_eq(shown_proton, pa);
	r = td_must(J.sock, "device.list", "{\"proton\":\"%s\"}", pa);
	{
		const cJSON *it;
		int self = 0;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(td_res(r), "devices"))
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "self"))) {
				ck_assert_str_eq(td_str(it, "device"), shown_device);
				self++;
			}
		ck_assert_int_eq(self, 1);
	}
	cJSON_Delete(r);
	ck_assert_int_eq(devices(&J, pa, label, sizeof label), 2);
	ck_assert_str_eq(label, "tablet");
	ck_assert_int_eq(td_conn_open(&ev, J.sock), 0);
	r = td_conn_call(&ev, "subscribe", "{\"since\":0,\"events\":[\"device.synced\"]}", NULL);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	cJSON_Delete(r);

	/* the tablet lists the relationship, with its history */
	ck_assert_msg(td_wait(has_rel, &rw, 20000), "the tablet does not list the relationship");
	wait_msgs(J.sock, rel, n, "b1");
	ck_assert_int_eq(msgs_count(J.sock, rel, "a2", &with), n);
	ck_assert_int_eq(with, 1);
	/* it reads bob's next message */
	send_msg(K.sock, rel, "b2");
	wait_msgs(J.sock, rel, n + 1, "b2");
	/* and bob gets the tablet's once, from the one alice he knows; both
	 * alice devices say it was sent: the tablet by itself, the first
	 * device by a sibling */
	subscribe_sent(&sent_a, A.sock);
	subscribe_sent(&sent_j, J.sock);
	send_msg(J.sock, rel, "from the tablet");
	wait_msgs(K.sock, rel, n + 2, "from the tablet");
	wait_msgs(A.sock, rel, n + 2, "from the tablet");
	td_sleep_ms(1000);
	ck_assert_int_eq(msgs_count(K.sock, rel, "from the tablet", &with), n + 2);
	ck_assert_int_eq(with, 1);
	ck_assert_int_eq(lists_rel(&K, pb, rel), 1);
	ck_assert_int_eq(events_within(&sent_a, 100, is_sent, &(struct sent_want){ rel, "from the tablet", "sibling" }), 1);
	ck_assert_int_eq(events_within(&sent_j, 100, is_sent, &(struct sent_want){ rel, "from the tablet", "self" }), 1);
	td_conn_close(&sent_a);
	td_conn_close(&sent_j);
	/* the tablet said once that it holds everything */
	ck_assert_int_eq(events_within(&ev, 1000, is_synced, pa), 1);
	td_conn_close(&ev);
	{
		cJSON *l = td_must(K.sock, "relationship.list", "{\"proton\":\"%s\"}", pb);
		ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(l), "relationships")), 1);
		cJSON_Delete(l);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pairing");
	TCase *tc = tcase_create("programs");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_pair_two_commands);
	tcase_add_test(tc, test_bulk_state);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
