/* Fixture: an engine whose sy.webhook/1 extension takes 30 ms and counts how
 * many of its calls run at once; health reports the highest count seen, so a
 * test can check that extension calls respect max_concurrency. */
#define _POSIX_C_SOURCE 199309L
#include "switchyard/switchyard.h"
#include "switchyard/ext/webhook.h"
#include <stdio.h>
#include <string.h>
#include <time.h>
static volatile int running = 0, highest = 0;
static void emit(const sy_sink_t *o, const char *t) { if (o && o->write) o->write(o, t, strlen(t)); }
static sy_status_t validate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"diagnostics\":[]}"); return SY_OK; }
static sy_status_t submit(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"ref\":{\"task\":\"t1\"},\"next_poll_after_ms\":10}"); return SY_OK; }
static sy_status_t poll(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"state\":\"succeeded\",\"outputs\":{\"text\":\"done\"}}"); return SY_OK; }
static sy_status_t cancel(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"outcome\":\"already_finished\",\"charged\":\"no\"}"); return SY_OK; }
static sy_status_t health(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r;
    char doc[128];
    snprintf(doc, sizeof doc, "{\"status\":\"ok\",\"message\":\"highest=%d\"}", highest);
    emit(o, doc);
    return SY_OK;
}
static sy_status_t webhook(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r;
    int now = __sync_add_and_fetch(&running, 1);
    int seen = highest;
    while (now > seen && !__sync_bool_compare_and_swap(&highest, seen, now)) seen = highest;
    struct timespec pause = { 0, 30 * 1000 * 1000 };
    nanosleep(&pause, 0);
    __sync_sub_and_fetch(&running, 1);
    emit(o, "{\"error\":{\"code\":\"WEBHOOK_REJECTED\",\"message\":\"probe\"}}");
    return SY_E_DENIED;
}
static const sy_extension_webhook_t webhook_table = { sizeof(sy_extension_webhook_t), webhook };
static const void *ext(const sy_plugin_t *p, sy_str_t id) {
    (void)p;
    if (id.size == strlen(SY_EXTENSION_WEBHOOK) && memcmp(id.data, SY_EXTENSION_WEBHOOK, id.size) == 0) return &webhook_table;
    return 0;
}
#define D "{\"id\":\"concurrency-probe\",\"version\":\"1.0.0\",\"capabilities\":[\"debug.echo\"]}"
static const sy_plugin_t g = { sizeof(sy_plugin_t), SY_VERSION_INIT, { D, sizeof(D) - 1 }, 0, validate, submit, poll, cancel, health, ext };
__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; return &g; }
