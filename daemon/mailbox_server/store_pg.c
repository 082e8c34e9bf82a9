#include "mailbox_server/store.h"
#include <string.h>
#include "error.h"
int mbs_store_pg_open(struct mbs_store **out, uv_loop_t *loop, const char *conninfo,
                      const struct mbs_store_events *ev)
{
	(void)out; (void)loop; (void)conninfo; (void)ev;
	return RELM_ESTORE;
}
int mbs_store_is_pg(const char *spec)
{
	return strncmp(spec, "postgres", 8) == 0 || strchr(spec, '=') != NULL;
}
