#ifndef SWITCHYARD_RUNNER_PROTOCOL_H
#define SWITCHYARD_RUNNER_PROTOCOL_H

/* The wire protocol between the host and yard-plugin-runner, the process that
 * loads one plugin out of the host's process. It carries the PluginAPI's JSON
 * documents unchanged; only the envelope is binary, so no document is parsed
 * twice on the way.
 *
 * The channel is one connected AF_UNIX stream socket, fd 3 in the runner.
 * Every message is a frame:
 *
 *   u32 size   bytes that follow this field (1 + 8 + payload), little-endian
 *   u8  kind   SYR_FRAME_*
 *   u64 id     call id, service request id, or 0
 *   payload    fields in the order listed below, each either
 *                u8 / i32 / u32 / i64 / u64 (little-endian), or
 *                bytes = u32 length + that many bytes (UTF-8 or raw)
 *
 * Who trusts whom: the runner trusts the host; the host trusts nothing the
 * runner sends (the plugin shares its process) and checks every size and
 * kind. A frame the host cannot parse ends the runner (PLUGIN_CRASHED).
 *
 * Host to runner
 *   SYR_FRAME_CALL            id = call id (the sy_call_t.call_id the plugin sees)
 *                             u8 op (SYR_OP_*), bytes extension id (SYR_OP_EXTENSION
 *                             and SYR_OP_HAS_EXTENSION only), bytes job id, bytes request
 *   SYR_FRAME_SERVICE_REPLY   id = the service request's id
 *                             i32 status (sy_status_t), i64 value, bytes output
 *
 * Runner to host
 *   SYR_FRAME_READY           id = 0, once, after the entry returned (or failed)
 *                             i32 load status (SYR_LOAD_*), bytes message,
 *                             u32 sy_plugin_t.struct_size, u32 abi major, u32 abi minor,
 *                             u32 required-function mask (SYR_FN_*), u32 mask of other
 *                             ABI majors whose entry the library exports (bit N = vN),
 *                             bytes descriptor, bytes sandbox report (JSON)
 *   SYR_FRAME_RESULT          id = call id
 *                             i32 status, u32 flags (SYR_RESULT_*), bytes document
 *   SYR_FRAME_SERVICE         id = service request id (unique per runner)
 *                             u64 call id, u8 service (SYR_SVC_*), u8 function
 *                             (index in the service's vtable, from 0), i64 value,
 *                             u8 count, count x bytes (the function's sy_str_t and
 *                             byte arguments in the order of its C signature)
 *                             The host answers with SYR_FRAME_SERVICE_REPLY, except
 *                             for sy.log/1 (void: no answer).
 *
 * The runner exits when the channel closes. */

#define SYR_PROTOCOL_VERSION 1
#define SYR_CHANNEL_FD 3

/* Largest frame either side accepts (artifact bytes travel in frames). */
#define SYR_MAX_FRAME_BYTES 536870912u /* 512 MiB */

#define SYR_FRAME_CALL 1
#define SYR_FRAME_SERVICE_REPLY 2
#define SYR_FRAME_READY 64
#define SYR_FRAME_RESULT 65
#define SYR_FRAME_SERVICE 66

#define SYR_OP_VALIDATE 1
#define SYR_OP_SUBMIT 2
#define SYR_OP_POLL 3
#define SYR_OP_CANCEL 4
#define SYR_OP_HEALTH 5
/* A plugin extension whose table is { uint32_t struct_size; fn(plugin, call, request, out) }. */
#define SYR_OP_EXTENSION 6
/* Whether get_extension(id) is non-NULL: status SY_OK when present, SY_E_UNSUPPORTED when not. */
#define SYR_OP_HAS_EXTENSION 7

#define SYR_LOAD_OK 0
#define SYR_LOAD_DLOPEN_FAILED 1
#define SYR_LOAD_NO_ENTRY 2
#define SYR_LOAD_ENTRY_NULL 3
#define SYR_LOAD_SANDBOX_FAILED 4

#define SYR_FN_VALIDATE 1u
#define SYR_FN_SUBMIT 2u
#define SYR_FN_POLL 4u
#define SYR_FN_CANCEL 8u
#define SYR_FN_HEALTH 16u
#define SYR_FN_GET_EXTENSION 32u

/* The document was longer than the runner's --max-document-bytes: cut, not sent. */
#define SYR_RESULT_TRUNCATED 1u
/* The extension id is not implemented (get_extension returned NULL). */
#define SYR_RESULT_ABSENT 2u

#define SYR_SVC_LOG 1
#define SYR_SVC_CLOCK 2
#define SYR_SVC_HTTP 3
#define SYR_SVC_SECRETS 4
#define SYR_SVC_ARTIFACTS 5
#define SYR_SVC_CRYPTO 6
#define SYR_SVC_KV 7
#define SYR_SVC_PROCESS 8

#endif
