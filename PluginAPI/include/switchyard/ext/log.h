#ifndef SWITCHYARD_EXT_LOG_H
#define SWITCHYARD_EXT_LOG_H

#include "../host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.log/1": structured logging into the host's log and the
 * job's event stream. The host redacts every secret value it knows of before
 * a line is stored or printed, but plugins must still never log secrets. */
#define SY_SERVICE_LOG "sy.log/1"

#define SY_LOG_DEBUG   0
#define SY_LOG_INFO    1
#define SY_LOG_WARNING 2
#define SY_LOG_ERROR   3

typedef struct sy_service_log {
    uint32_t struct_size;
    /* [call thread] Record one line. `message` is borrowed; never fails. */
    void (*log)(const sy_call_t *call, int32_t level, sy_str_t message);
} sy_service_log_t;
enum { SY_SERVICE_LOG_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_log_t, log) };


#ifdef __cplusplus
}
#endif

#endif
