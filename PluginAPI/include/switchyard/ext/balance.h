#ifndef SWITCHYARD_EXT_BALANCE_H
#define SWITCHYARD_EXT_BALANCE_H

#include "../plugin.h"

/* Plugin extension "sy.balance/1": the account balance at the provider. */
#define SY_EXTENSION_BALANCE "sy.balance/1"

typedef struct sy_extension_balance {
    uint32_t struct_size;
    /* [worker thread] request {"config"}. Writes
     * {"amount_minor":int,"currency":...} or {"error":{...}}. */
    sy_status_t (*balance)(const sy_plugin_t *plugin, const sy_call_t *call,
                           sy_str_t request, const sy_sink_t *out);
} sy_extension_balance_t;

#endif
