#ifndef SWITCHYARD_HOST_H
#define SWITCHYARD_HOST_H

#include "version.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sy_call;

/* What the host hands the plugin at entry. One sy_host_t per loaded plugin;
 * it identifies the plugin to the host, so services know which manifest
 * (allowed hosts, declared secrets, kv scope) applies.
 *
 * Owned by the host, valid for the life of the process. Read-only for the
 * plugin. */
typedef struct sy_host {
    uint32_t struct_size;
    sy_version_t abi;  /* the ABI the host implements */
    sy_str_t name;     /* e.g. "switchyard" */
    sy_str_t version;  /* host semver, for diagnostics only: never branch on it */

    /* Host's private data. The plugin must not touch it. */
    void *host_data;

    /* [any thread, thread-safe] Look up a host service by id with revision,
     * e.g. "sy.http/1" (see ext/). Returns a pointer to the service's vtable,
     * owned by the host and valid for the life of the process, or NULL when the
     * host does not offer that service (or denies it to this plugin).
     * A plugin must keep working, with a clear error in its result documents,
     * when any service is absent. */
    const void *(*get_service)(const struct sy_host *host, sy_str_t id);
} sy_host_t;
/* Frozen v1.0 sizes (see version.h). */
enum { SY_HOST_V1_0_SIZE = SY_SIZE_THROUGH(sy_host_t, get_service) };


/* The context of one call from the host into the plugin (validate, submit,
 * poll, ...). Services take it as their first argument so the host can
 * attribute logs, network traffic and artifacts to the job being served, and
 * cancel what the job started.
 *
 * Owned by the host, valid only until the plugin function that received it
 * returns. Pass it only to services, from the thread of that call. */
typedef struct sy_call {
    uint32_t struct_size;
    const sy_host_t *host;
    uint64_t call_id;  /* unique within the host process */
    sy_str_t job_id;   /* empty for calls outside a job (health, balance) */
    /* Host's private data. The plugin must not touch it. */
    void *host_data;
} sy_call_t;
enum { SY_CALL_V1_0_SIZE = SY_SIZE_THROUGH(sy_call_t, host_data) };


#ifdef __cplusplus
}
#endif

#endif
