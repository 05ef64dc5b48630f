#ifndef SWITCHYARD_PLUGIN_H
#define SWITCHYARD_PLUGIN_H

#include "version.h"
#include "text.h"
#include "status.h"
#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a plugin hands the host: a descriptor and the job model.
 *
 * The job model is submit, poll, cancel; the plugin keeps no state between
 * calls. Every provider Switchyard speaks to is submit-then-poll, so whatever
 * the plugin needs to find a job again goes into the `ref` document it returns
 * from submit. The host stores that ref durably before anything else and owns
 * the polling schedule; after a crash it resumes by calling poll(ref) again.
 *
 * Documents: every `request` is a UTF-8 JSON object, borrowed for the call.
 * Every result is one UTF-8 JSON object written to `out` (see text.h). The
 * shapes are specified in docs/abi.md; the members common to all requests are
 *   "config":  the engine configuration (validated against plugin.json's
 *              config_schema by the host)
 *   "job":     {"id", "idempotency_key", "attempt", "capability"} when the
 *              call serves a job (capability lets poll and cancel map an
 *              answer from a ref that does not record it)
 * A failed operation returns SY_E_FAILED and writes
 *   {"error":{"code","message","remediation","field"?,"retryable","charged",
 *             "retry_after_ms"?}}
 * where "code" is a stable code such as AUTH_FAILED or RATE_LIMITED,
 * "charged" is "no", "yes" or "unknown" (may the provider bill for this?) and
 * "retry_after_ms" is how long the provider asked to wait before a retry
 * (its Retry-After), for a retryable error.
 *
 * Threads: the host calls every function below from its own worker threads,
 * never from an async runtime's cooperative threads, and calls them
 * concurrently for different jobs (up to the manifest's max_concurrency).
 * Plugins must be thread-safe. Calls may block (a service such as sy.http/1
 * waits for its answer); the host bounds them with timeouts.
 *
 * Owned by the plugin and valid for the life of the process: the host never
 * unloads a plugin. */
typedef struct sy_plugin {
    uint32_t struct_size;
    sy_version_t abi; /* the ABI the plugin was built against */

    /* JSON object, static for the life of the process:
     *   {"id","version","name","capabilities":[ids],"extensions":[ids]}
     * The host refuses the plugin unless id, version and capabilities equal
     * those of its plugin.json. */
    sy_str_t descriptor;

    /* Plugin's private data. The host must not touch it. */
    void *plugin_data;

    /* [worker thread, concurrent] Check a request without any network access
     * and fast (< 1 ms is the expectation): request {"capability","inputs",
     * "config"}. Writes {"diagnostics":[{"code","message","remediation",
     * "field","severity":"error"|"warning"}]}; an empty list means valid.
     * Returns SY_OK whenever it could judge, even if the inputs are invalid;
     * SY_E_INVALID_ARGUMENT only for a request that is not a JSON object. */
    sy_status_t (*validate)(const struct sy_plugin *plugin, const sy_call_t *call,
                            sy_str_t request, const sy_sink_t *out);

    /* [worker thread, concurrent] Start a job: request {"capability","inputs",
     * "config","job"}. Writes either {"ref":<any JSON>,"next_poll_after_ms"?}
     * for remote work, or {"result":<poll result>} for work finished during
     * the call (local engines). Must use job.idempotency_key where the
     * provider supports one, so that a retried submit cannot create a second
     * paid job. */
    sy_status_t (*submit)(const struct sy_plugin *plugin, const sy_call_t *call,
                          sy_str_t request, const sy_sink_t *out);

    /* [worker thread, concurrent] Ask where a job is: request {"ref","config",
     * "job"}. Writes {"state":"queued"|"running"|"succeeded"|"failed"|
     * "cancelled","progress"?:0..1,"message"?,"outputs"?:{...},"error"?:{...},
     * "next_poll_after_ms"?,"usage"?}. The host ignores a non-terminal state
     * reported after a terminal one, so a late update never regresses a job.
     * "usage" is what the provider measured, on every terminal answer that
     * has it: {"execution_ms"?,"video_seconds"?,"images"?,"megapixels"?,
     * "units"?,"mode"?,"gpu"?}; the ledger settles usage x price. */
    sy_status_t (*poll)(const struct sy_plugin *plugin, const sy_call_t *call,
                        sy_str_t request, const sy_sink_t *out);

    /* [worker thread, concurrent] Cancel a job: request {"ref","config","job"}.
     * Idempotent: cancelling twice, or after the job finished, is not an error.
     * Writes {"outcome":"cancelled_in_queue"|"cancelled_running"|
     * "already_finished"|"not_found","charged":"no"|"yes"|"unknown",
     * "message"?,"usage"?}. The outcome must be truthful: if the provider may still
     * bill, say charged "unknown" or "yes". */
    sy_status_t (*cancel)(const struct sy_plugin *plugin, const sy_call_t *call,
                          sy_str_t request, const sy_sink_t *out);

    /* [worker thread, concurrent] Engine health: request {"config"}. Writes
     * {"status":"ok"|"degraded"|"offline","message"?,"details"?:{...}}. May use
     * the network; the host caches the answer with its age. */
    sy_status_t (*health)(const struct sy_plugin *plugin, const sy_call_t *call,
                          sy_str_t request, const sy_sink_t *out);

    /* [any thread, thread-safe] Look up an optional plugin extension by id
     * with revision, e.g. "sy.estimate/1" (see ext/). Returns a pointer owned
     * by the plugin, valid for the life of the process, or NULL when the plugin
     * does not implement it. Unknown ids must return NULL. */
    const void *(*get_extension)(const struct sy_plugin *plugin, sy_str_t id);
} sy_plugin_t;
/* Frozen v1.0 size (see version.h): the host refuses a smaller sy_plugin_t as
 * PLUGIN_CORRUPT and accepts a larger one. */
enum { SY_PLUGIN_V1_0_SIZE = SY_SIZE_THROUGH(sy_plugin_t, get_extension) };


#ifdef __cplusplus
}
#endif

#endif
