#ifndef SWITCHYARD_EXT_PROCESS_H
#define SWITCHYARD_EXT_PROCESS_H

#include "../host.h"
#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.process/1": child processes for local engines (ffmpeg,
 * espeak-ng), shaped for submit/poll.
 *
 * Only executables named in plugin.json's "processes" allow-list run, found on
 * the host's PATH; anything else is SY_E_DENIED. A listed executable that is
 * not installed is SY_E_NOT_FOUND with
 * {"error":{"code":"DEPENDENCY_MISSING","message","remediation":<the apt-get
 * command>}}.
 *
 * Plugins never see paths. Arguments name files by placeholder, and the host
 * substitutes paths in a private scratch folder:
 *   "{input:NAME}"  an artifact from "inputs", copied out of the store (NAME
 *                   may end in .EXT, kept on the file: "lut.cube");
 *   "{output:NAME}" a file the child writes, imported into the store on exit;
 *   "{file:NAME}"   a text file from "files" (e.g. an ffconcat list).
 * A placeholder may sit inside a longer argument ("movie={input:logo}").
 *
 * start request:
 *   {"executable":"ffmpeg", "args":[...],
 *    "key":"<stable id>",            optional; start is idempotent per key
 *    "inputs":{NAME:{"artifact":"sha256:..."}},
 *    "outputs":{NAME:{"extension":"mp4","media_type":"video/mp4"}},
 *    "files":{NAME:{"text":"...","extension":"txt"}},
 *    "stdin":"...",                  optional UTF-8 fed to the child
 *    "progress":{"format":"ffmpeg","duration_seconds":N},  optional
 *    "timeout_ms":N}                 optional; the child is killed after it
 * answer: {"handle":"proc_<hex>"}.
 *
 * With a "key", the handle is derived from the plugin id and the key, so a
 * plugin that stores the handle in its job ref can start the same work again
 * after a host restart (the host forgets running children when it exits and
 * kills what it can find of them on the next start) and keep polling the
 * same handle. Starting a key that is still running or has exited returns the
 * existing handle without starting anything.
 *
 * status document:
 *   {"state":"running"|"exited"|"killed"|"timed_out",
 *    "progress":0..1 (from ffmpeg's -progress output: out_time / duration),
 *    "exit_code":int (exited), "signal":int (killed),
 *    "elapsed_ms":int, "stderr_tail":"last 4 KiB of stderr",
 *    "stdout":"first 1 MiB of stdout" (once finished),
 *    "outputs":{NAME:{"artifact","media_type","size"}} (exit code 0 only;
 *     an output the child did not write is absent)} */
#define SY_SERVICE_PROCESS "sy.process/1"

typedef struct sy_service_process {
    uint32_t struct_size;
    /* [call thread] Start a child (see above). Materializes the inputs first,
     * so it can take as long as copying them. Writes {"handle"}; SY_E_DENIED,
     * SY_E_NOT_FOUND (DEPENDENCY_MISSING), SY_E_INVALID_ARGUMENT (bad request,
     * unknown artifact) or SY_E_FAILED (spawn failed), with an error document. */
    sy_status_t (*start)(const sy_call_t *call, sy_str_t request, const sy_sink_t *handle);
    /* [call thread] Writes the status document. Outputs are imported into the
     * store the first time a finished child is seen. SY_E_NOT_FOUND for a
     * handle this host process does not know (e.g. started before a restart). */
    sy_status_t (*status)(const sy_call_t *call, sy_str_t handle, const sy_sink_t *status);
    /* [call thread, blocks up to timeout_ms] Waits for the child to finish,
     * then writes the status document (still "running" after the timeout).
     * For short helpers such as ffprobe. */
    sy_status_t (*wait)(const sy_call_t *call, sy_str_t handle, int64_t timeout_ms, const sy_sink_t *status);
    /* [call thread] Kills the child's whole process group (SIGTERM, SIGKILL
     * after 2 s) and waits for it. Idempotent. Writes
     * {"outcome":"killed"|"already_finished"}; SY_E_NOT_FOUND if unknown. */
    sy_status_t (*cancel)(const sy_call_t *call, sy_str_t handle, const sy_sink_t *outcome);
    /* [call thread] Whether an allowed executable is installed, without
     * running it: writes {"name","installed":bool,"remediation"?}. SY_E_DENIED
     * for a name outside the allow-list. */
    sy_status_t (*locate)(const sy_call_t *call, sy_str_t name, const sy_sink_t *answer);
} sy_service_process_t;
enum { SY_SERVICE_PROCESS_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_process_t, locate) };


#ifdef __cplusplus
}
#endif

#endif
