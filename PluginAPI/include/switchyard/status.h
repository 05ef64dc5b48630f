#ifndef SWITCHYARD_STATUS_H
#define SWITCHYARD_STATUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every ABI function. Append-only: a value once
 * published never changes meaning. Unknown values must be treated as
 * SY_E_INTERNAL by the receiver.
 *
 * Transport status only: the domain outcome of a job (failed, refused by the
 * provider, cancelled...) travels in the JSON document written to the sink,
 * with a stable error code such as AUTH_FAILED or RATE_LIMITED. */
typedef int32_t sy_status_t;

#define SY_OK                   0 /* the call did what it says; read the sink */
#define SY_E_INVALID_ARGUMENT   1 /* the request document is not valid JSON or lacks a required member */
#define SY_E_UNSUPPORTED        2 /* capability, operation or extension not supported by this plugin */
#define SY_E_FAILED             3 /* the operation failed; the sink holds {"error":{...}} */
#define SY_E_DENIED             4 /* the host refused: host not in the allow-list, undeclared secret, ... */
#define SY_E_NOT_FOUND          5 /* no such secret, key, artifact or job */
#define SY_E_TIMEOUT            6 /* the host gave up waiting (http, child process) */
#define SY_E_CANCELLED          7 /* the host cancelled the call's job while it ran */
#define SY_E_INTERNAL           8 /* a bug; the sink may hold {"error":{...}} */

#ifdef __cplusplus
}
#endif

#endif
