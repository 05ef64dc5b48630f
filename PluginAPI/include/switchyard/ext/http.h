#ifndef SWITCHYARD_EXT_HTTP_H
#define SWITCHYARD_EXT_HTTP_H

#include "../host.h"
#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.http/1": the only way a plugin reaches the network.
 *
 * The host enforces plugin.json's network.hosts allow-list (a request to any
 * other host returns SY_E_DENIED without leaving the process), applies its
 * timeouts, redacts secrets from logs, and can record and replay traffic in
 * tests. Redirects are followed only to allowed hosts. Answers are given
 * with the plugin's own credentials removed: any value of a declared secret,
 * of a credential header the plugin sent, or of a token the host signed for
 * it is replaced by "[REDACTED:NAME]" (so an error body that echoes the key
 * cannot leak it through an excerpt). */
#define SY_SERVICE_HTTP "sy.http/1"

typedef struct sy_service_http {
    uint32_t struct_size;
    /* [call thread, blocks until the answer or the timeout] Perform one
     * request: {"method","url","headers":{name:value},"body"?:utf8,
     * "body_base64"?:base64,"timeout_ms"?}. On SY_OK writes
     * {"status":int,"headers":{lower-case name:value},"body_base64":...};
     * any HTTP status, 4xx and 5xx included, is SY_OK. Returns SY_E_DENIED
     * for a host outside the allow-list, SY_E_TIMEOUT, SY_E_CANCELLED, or
     * SY_E_FAILED with {"error":{...}} for connection failures. */
    sy_status_t (*request)(const sy_call_t *call, sy_str_t request, const sy_sink_t *response);
} sy_service_http_t;
enum { SY_SERVICE_HTTP_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_http_t, request) };


#ifdef __cplusplus
}
#endif

#endif
