/* Switchyard PluginAPI v1 — umbrella header.
 *
 * A plugin includes this one file. Each concern lives in its own header so a
 * reader finds a concept by file name:
 *   version.h   ABI version numbers and the compatibility rule
 *   text.h      sy_str_t (UTF-8 with explicit length) and sy_sink_t (output)
 *   status.h    append-only status codes
 *   host.h      what the host hands the plugin: sy_host_t, sy_call_t
 *   plugin.h    what the plugin hands back: sy_plugin_t (the job model)
 *   entry.h     the one exported function, sy_plugin_entry_v1
 *   ext/        host services (sy.http/1, sy.secrets/1, ...) and optional
 *               plugin extensions (sy.estimate/1, sy.webhook/1, ...)
 *
 * Thread tags. Every function in these headers carries one of these, and
 * means exactly this:
 *   [loader thread, once]       called once per process by the host, right
 *                               after dlopen and before any other call.
 *   [worker thread, concurrent] a plugin function the host calls on its own
 *                               worker threads (never an async runtime's
 *                               cooperative threads), concurrently for
 *                               different jobs; the plugin must be
 *                               thread-safe. It may block on services.
 *   [call thread]               a host service taking a sy_call_t: call it
 *                               only on the thread of the host call that
 *                               received that sy_call_t, before that call
 *                               returns (host.h). Producers write sinks on
 *                               that thread too.
 *   [call thread, blocks ...]   the same, and it blocks until the stated
 *                               event; the time counts against the call's
 *                               deadline.
 *   [any thread, thread-safe]   takes no sy_call_t: callable from any thread,
 *                               concurrently, for the life of the process.
 * A tag may add a constraint ("no network").
 *
 * C99 only (C++ includes it too: every header is wrapped in extern "C").
 * Every struct starts with struct_size and only ever grows at the
 * end; status codes and ids are append-only. Nothing is freed across the
 * boundary: inputs are borrowed for the duration of a call, outputs are
 * copied by the receiver through an sy_sink_t.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include "version.h"
#include "text.h"
#include "status.h"
#include "host.h"
#include "plugin.h"
#include "entry.h"
#include "ext/log.h"
#include "ext/clock.h"
#include "ext/http.h"
#include "ext/secrets.h"
#include "ext/artifacts.h"
#include "ext/crypto.h"
#include "ext/kv.h"
#include "ext/estimate.h"
#include "ext/balance.h"
#include "ext/webhook.h"
#include "ext/reconcile.h"
#include "ext/process.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
