/* The runner's sandbox: what a plugin's code may do once loaded.
 *
 * Layers, each tried and recorded on its own (the report names what is in
 * effect and why a layer is missing):
 *   rlimits       address space, CPU seconds, file size, open files, tasks, no
 *                 core dumps; hard limits equal to soft so the plugin cannot
 *                 raise them
 *   network       a private network namespace (as root, or through an
 *                 unprivileged user namespace): no interface but a downed
 *                 loopback
 *   capabilities  every capability dropped (a runner started by root keeps
 *                 uid 0 but not its powers)
 *   landlock      the filesystem reduced to the library folders (read-only)
 *                 and the scratch folder; from ABI 4 also TCP bind/connect,
 *                 from ABI 6 signals and abstract sockets outside the runner
 *   seccomp       no sockets, exec, fork, ptrace, io_uring, namespaces,
 *                 mounts, keyrings or BPF; signals only to the runner itself
 *
 * Called before the plugin's library is opened, so even the library's ELF
 * constructors and its entry run confined. */
#define _GNU_SOURCE
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Landlock, defined here rather than from <linux/landlock.h>: the build
 * machine's headers may predate the ABI the running kernel offers. */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define RUNNER_LL_CREATE_RULESET_VERSION (1U << 0)
#define RUNNER_LL_RULE_PATH_BENEATH 1
#define RUNNER_LL_FS_EXECUTE (1ULL << 0)
#define RUNNER_LL_FS_WRITE_FILE (1ULL << 1)
#define RUNNER_LL_FS_READ_FILE (1ULL << 2)
#define RUNNER_LL_FS_READ_DIR (1ULL << 3)
#define RUNNER_LL_FS_REMOVE_DIR (1ULL << 4)
#define RUNNER_LL_FS_REMOVE_FILE (1ULL << 5)
#define RUNNER_LL_FS_MAKE_CHAR (1ULL << 6)
#define RUNNER_LL_FS_MAKE_DIR (1ULL << 7)
#define RUNNER_LL_FS_MAKE_REG (1ULL << 8)
#define RUNNER_LL_FS_MAKE_SOCK (1ULL << 9)
#define RUNNER_LL_FS_MAKE_FIFO (1ULL << 10)
#define RUNNER_LL_FS_MAKE_BLOCK (1ULL << 11)
#define RUNNER_LL_FS_MAKE_SYM (1ULL << 12)
#define RUNNER_LL_FS_REFER (1ULL << 13)     /* ABI 2 */
#define RUNNER_LL_FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define RUNNER_LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define RUNNER_LL_NET_BIND_TCP (1ULL << 0)  /* ABI 4 */
#define RUNNER_LL_NET_CONNECT_TCP (1ULL << 1)
#define RUNNER_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define RUNNER_LL_SCOPE_SIGNAL (1ULL << 1)

struct runner_ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct runner_ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

/* ---- the report: a JSON object built as layers are applied ---- */

typedef struct report {
    char *text;
    size_t size;
    size_t used;
    int layers;
} report_t;

static void report_append(report_t *r, const char *format, ...) {
    if (r->used >= r->size) return;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(r->text + r->used, r->size - r->used, format, args);
    va_end(args);
    if (n > 0) r->used += (size_t)n < r->size - r->used ? (size_t)n : r->size - r->used - 1;
}

/* Appends `s` as a JSON string body (without quotes). */
static void report_escaped(report_t *r, const char *s) {
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') report_append(r, "\\%c", c);
        else if (c < 0x20) report_append(r, "\\u%04x", c);
        else report_append(r, "%c", c);
    }
}

/* One layer: {"layer","state":"enforced"|"unavailable"|"off","detail"}. */
static void report_layer(report_t *r, const char *layer, const char *state, const char *format, ...) {
    char detail[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(detail, sizeof detail, format, args);
    va_end(args);
    report_append(r, "%s{\"layer\":\"%s\",\"state\":\"%s\",\"detail\":\"", r->layers++ ? "," : "", layer, state);
    report_escaped(r, detail);
    report_append(r, "\"}");
}

/* ---- rlimits ---- */

/* Tasks (threads included) the real user runs now: RLIMIT_NPROC counts them
 * all, so the limit is the current count plus headroom for the runner. */
static uint64_t user_task_count(uid_t uid) {
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    uint64_t total = 0;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        long real_uid = -1, threads = 0;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "Uid:", 4) == 0) real_uid = strtol(line + 4, NULL, 10);
            else if (strncmp(line, "Threads:", 8) == 0) threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
        if (real_uid == (long)uid && threads > 0) total += (uint64_t)threads;
    }
    closedir(proc);
    return total;
}

static int set_limit(int resource, uint64_t soft, uint64_t hard) {
    struct rlimit current;
    if (getrlimit(resource, &current) == 0) {
        /* Never raise: a limit the host's environment already set stays. */
        if (current.rlim_max != RLIM_INFINITY && hard > current.rlim_max) hard = current.rlim_max;
        if (soft > hard) soft = hard;
    }
    struct rlimit limit = { (rlim_t)soft, (rlim_t)hard };
    return setrlimit(resource, &limit);
}

static void apply_rlimits(const runner_sandbox_config_t *c, report_t *r) {
    char failed[256] = "";
    size_t used = 0;
#define LIMIT(res, soft, hard, name) \
    if (set_limit(res, soft, hard) != 0) used += (size_t)snprintf(failed + used, used < sizeof failed ? sizeof failed - used : 0, " %s (%s)", name, strerror(errno))
    LIMIT(RLIMIT_CORE, 0, 0, "core");
    if (c->memory_bytes) { LIMIT(RLIMIT_AS, c->memory_bytes, c->memory_bytes, "memory"); }
    if (c->cpu_seconds) { LIMIT(RLIMIT_CPU, c->cpu_seconds, c->cpu_seconds + 5, "cpu"); }
    if (c->file_bytes) { LIMIT(RLIMIT_FSIZE, c->file_bytes, c->file_bytes, "file size"); }
    if (c->open_files) { LIMIT(RLIMIT_NOFILE, c->open_files, c->open_files, "open files"); }
    uint64_t tasks = 0;
    if (c->extra_tasks) {
        tasks = user_task_count(getuid()) + c->extra_tasks;
        LIMIT(RLIMIT_NPROC, tasks, tasks, "tasks");
    }
#undef LIMIT
    report_layer(r, "rlimits", failed[0] ? "partial" : "enforced",
                 "address space %llu MiB, CPU %llu s, file size %llu MiB, open files %llu, tasks %llu%s, core dumps off%s%s",
                 (unsigned long long)(c->memory_bytes >> 20), (unsigned long long)c->cpu_seconds,
                 (unsigned long long)(c->file_bytes >> 20), (unsigned long long)c->open_files, (unsigned long long)tasks,
                 getuid() == 0 ? " (the kernel exempts uid 0 from the task limit; seccomp refuses fork)" : "",
                 failed[0] ? "; not set:" : "", failed);
}

/* ---- network namespace ---- */

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void apply_network_namespace(report_t *r) {
    if (unshare(CLONE_NEWNET) == 0) {
        report_layer(r, "network-namespace", "enforced", "private network namespace: no interfaces, loopback down");
        return;
    }
    int direct = errno;
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
        /* Map our own ids so file ownership reads the same inside. */
        char map[64];
        int mapped = write_file("/proc/self/setgroups", "deny") == 0;
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
        mapped = mapped && write_file("/proc/self/gid_map", map) == 0;
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
        mapped = write_file("/proc/self/uid_map", map) == 0 && mapped;
        report_layer(r, "network-namespace", "enforced", "private network namespace inside an unprivileged user namespace%s",
                     mapped ? "" : " (ids not mapped)");
        return;
    }
    report_layer(r, "network-namespace", "unavailable", "unshare(CLONE_NEWNET): %s; with a user namespace: %s",
                 strerror(direct), strerror(errno));
}

/* ---- capabilities ---- */

struct runner_cap_header { uint32_t version; int pid; };
struct runner_cap_data { uint32_t effective, permitted, inheritable; };
#define RUNNER_CAP_VERSION_3 0x20080522

static void drop_capabilities(report_t *r) {
    struct runner_cap_header header = { RUNNER_CAP_VERSION_3, 0 };
    struct runner_cap_data data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) {
        report_layer(r, "capabilities", "unavailable", "capget: %s", strerror(errno));
        return;
    }
    int had = (data[0].effective | data[0].permitted | data[1].effective | data[1].permitted) != 0;
    /* The bounding set first (needs CAP_SETPCAP, which we may still hold). */
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) {
        report_layer(r, "capabilities", "unavailable", "capset: %s", strerror(errno));
        return;
    }
    report_layer(r, "capabilities", "enforced", had ? "all capabilities dropped (started with some, e.g. as root)" : "none held");
}

/* ---- landlock ---- */

static int landlock_allow(int ruleset, const char *path, uint64_t access, uint64_t handled) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
        access &= RUNNER_LL_FS_EXECUTE | RUNNER_LL_FS_WRITE_FILE | RUNNER_LL_FS_READ_FILE | RUNNER_LL_FS_TRUNCATE | RUNNER_LL_FS_IOCTL_DEV;
    }
    struct runner_ll_path_beneath_attr rule = { access & handled, fd };
    long rc = syscall(SYS_landlock_add_rule, ruleset, RUNNER_LL_RULE_PATH_BENEATH, &rule, 0);
    close(fd);
    return rc == 0 ? 0 : -1;
}

/* What the dynamic loader and the Swift runtime read while a plugin loads
 * and runs: system libraries, the loader cache, a few kernel files. */
static const char *const system_read_only[] = {
    "/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/usr/share/zoneinfo", "/proc/self", "/proc/meminfo", "/proc/stat", "/proc/cpuinfo",
    "/sys/devices/system/cpu", "/sys/fs/cgroup",
};
static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random" };

static void apply_landlock(const runner_sandbox_config_t *c, report_t *r) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, RUNNER_LL_CREATE_RULESET_VERSION);
    if (abi < 1) {
        report_layer(r, "landlock", "unavailable", "the kernel offers no Landlock (%s): the plugin can read and write what the user can",
                     strerror(errno));
        return;
    }
    uint64_t fs = RUNNER_LL_FS_EXECUTE | RUNNER_LL_FS_WRITE_FILE | RUNNER_LL_FS_READ_FILE | RUNNER_LL_FS_READ_DIR |
                  RUNNER_LL_FS_REMOVE_DIR | RUNNER_LL_FS_REMOVE_FILE | RUNNER_LL_FS_MAKE_CHAR | RUNNER_LL_FS_MAKE_DIR |
                  RUNNER_LL_FS_MAKE_REG | RUNNER_LL_FS_MAKE_SOCK | RUNNER_LL_FS_MAKE_FIFO | RUNNER_LL_FS_MAKE_BLOCK |
                  RUNNER_LL_FS_MAKE_SYM;
    if (abi >= 2) fs |= RUNNER_LL_FS_REFER;
    if (abi >= 3) fs |= RUNNER_LL_FS_TRUNCATE;
    if (abi >= 5) fs |= RUNNER_LL_FS_IOCTL_DEV;
    struct runner_ll_ruleset_attr attr = { fs, 0, 0 };
    if (abi >= 4) attr.handled_access_net = RUNNER_LL_NET_BIND_TCP | RUNNER_LL_NET_CONNECT_TCP;
    if (abi >= 6) attr.scoped = RUNNER_LL_SCOPE_ABSTRACT_UNIX_SOCKET | RUNNER_LL_SCOPE_SIGNAL;
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) {
        report_layer(r, "landlock", "unavailable", "landlock_create_ruleset (ABI %ld): %s", abi, strerror(errno));
        return;
    }
    const uint64_t read_only = RUNNER_LL_FS_READ_FILE | RUNNER_LL_FS_READ_DIR;
    for (size_t i = 0; i < sizeof system_read_only / sizeof *system_read_only; i++) {
        (void)landlock_allow(ruleset, system_read_only[i], read_only, fs);
    }
    for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
        (void)landlock_allow(ruleset, devices[i], RUNNER_LL_FS_READ_FILE | RUNNER_LL_FS_WRITE_FILE, fs);
    }
    int missing = 0;
    for (int i = 0; i < c->read_only_count; i++) {
        if (landlock_allow(ruleset, c->read_only[i], read_only, fs) != 0) missing++;
    }
    int scratch_ok = c->scratch && landlock_allow(ruleset, c->scratch, fs & ~RUNNER_LL_FS_EXECUTE, fs) == 0;
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        int error = errno;
        close(ruleset);
        report_layer(r, "landlock", "unavailable", "landlock_restrict_self: %s", strerror(error));
        return;
    }
    close(ruleset);
    report_layer(r, "landlock", "enforced",
                 "ABI %ld: reads only system libraries and %d plugin folder(s)%s; writes only %s%s%s",
                 abi, c->read_only_count - missing, missing ? " (some missing)" : "",
                 scratch_ok ? "its scratch folder" : "nowhere",
                 abi >= 4 ? "; TCP bind and connect denied" : "",
                 abi >= 6 ? "; no signals or abstract sockets outside the runner" : "");
}

/* ---- seccomp ---- */

#if defined(__x86_64__)
#define RUNNER_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RUNNER_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef RUNNER_AUDIT_ARCH
typedef struct filter_builder {
    struct sock_filter code[256];
    unsigned short count;
} filter_builder_t;

static void emit(filter_builder_t *f, struct sock_filter instruction) {
    if (f->count < sizeof f->code / sizeof *f->code) f->code[f->count++] = instruction;
}

#define ARG_LOW(n) ((uint32_t)offsetof(struct seccomp_data, args[n]))
#define ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))

/* Syscalls a plugin never needs: each answers EPERM. */
static const long denied_syscalls[] = {
    SYS_socket, SYS_connect, SYS_bind, SYS_listen, SYS_accept, SYS_accept4,
    SYS_execve, SYS_execveat,
#ifdef SYS_fork
    SYS_fork,
#endif
#ifdef SYS_vfork
    SYS_vfork,
#endif
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_tkill,
    SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot,
    SYS_keyctl, SYS_add_key, SYS_request_key, SYS_bpf, SYS_perf_event_open,
    SYS_userfaultfd, SYS_open_by_handle_at, SYS_name_to_handle_at,
    SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load,
    SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_quotactl, SYS_syslog,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
#ifdef SYS_io_uring_setup
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
#ifdef SYS_pidfd_open
    SYS_pidfd_open, SYS_pidfd_send_signal,
#endif
#ifdef SYS_pidfd_getfd
    SYS_pidfd_getfd,
#endif
#ifdef SYS_fsopen
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_move_mount, SYS_open_tree,
#endif
#ifdef SYS_mount_setattr
    SYS_mount_setattr,
#endif
#ifdef SYS_iopl
    SYS_iopl, SYS_ioperm,
#endif
};

static void apply_seccomp(report_t *r) {
    filter_builder_t f;
    f.count = 0;
    pid_t self = getpid();
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RUNNER_AUDIT_ARCH, 1, 0));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
    /* x32 system calls reach the same kernel code under other numbers. */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ERRNO(EPERM)));
#endif
    for (size_t i = 0; i < sizeof denied_syscalls / sizeof *denied_syscalls; i++) {
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied_syscalls[i], 0, 1));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ERRNO(EPERM)));
    }
#ifdef SYS_clone3
    /* clone3 takes its flags in memory, out of a filter's reach: ENOSYS makes
     * glibc fall back to clone, whose flags are checked below. */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ERRNO(ENOSYS)));
#endif
    /* clone: threads only (CLONE_THREAD), never a new process. */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ERRNO(EPERM)));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    /* kill and tgkill: only this process (abort() signals itself). */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kill, 1, 0));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_tgkill, 0, 4));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)self, 1, 0));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ERRNO(EPERM)));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));

    struct sock_fprog program = { f.count, f.code };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) {
        report_layer(r, "seccomp", "unavailable", "PR_SET_SECCOMP: %s: the plugin may open sockets, exec and fork (other layers still apply)",
                     strerror(errno));
        return;
    }
    report_layer(r, "seccomp", "enforced",
                 "%zu system calls refused: no sockets, exec, fork, ptrace, io_uring, namespaces, mounts, keyrings or BPF; signals only to itself",
                 sizeof denied_syscalls / sizeof *denied_syscalls + 3);
}
#else
static void apply_seccomp(report_t *r) {
    report_layer(r, "seccomp", "unavailable", "no filter for this CPU architecture");
}
#endif

int runner_sandbox_apply(const runner_sandbox_config_t *c, char *text, size_t size) {
    report_t r = { text, size, 0, 0 };
    report_append(&r, "{\"sandbox\":%s,\"uid\":%u,\"layers\":[", c->enabled ? "true" : "false", (unsigned)getuid());
    apply_rlimits(c, &r);
    if (c->enabled) {
        apply_network_namespace(&r);
        drop_capabilities(&r);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
            report_layer(&r, "no-new-privileges", "unavailable", "%s", strerror(errno));
        }
        apply_landlock(c, &r);
        apply_seccomp(&r);
    } else {
        report_layer(&r, "sandbox", "off", "started with --no-sandbox: only the rlimits apply");
    }
    report_append(&r, "]}");
    return 0;
}

void runner_sandbox_self_check(char *text, size_t size) {
    size_t used = strlen(text);
    if (used < 2 || text[used - 1] != '}') return;
    report_t r = { text, size, used - 1, 0 };
    report_append(&r, ",\"checks\":{");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        report_append(&r, "\"socket\":\"refused: %s\"", strerror(errno));
    } else {
        struct sockaddr_in address;
        memset(&address, 0, sizeof address);
        address.sin_family = AF_INET;
        address.sin_port = htons(9);
        address.sin_addr.s_addr = htonl(0x7f000001);
        int rc = connect(fd, (struct sockaddr *)&address, sizeof address);
        report_append(&r, "\"socket\":\"opened; connect to 127.0.0.1: %s\"", rc == 0 ? "connected" : strerror(errno));
        close(fd);
    }
    int file = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (file < 0) report_append(&r, ",\"read_outside\":\"refused: %s\"", strerror(errno));
    else { report_append(&r, ",\"read_outside\":\"allowed\""); close(file); }
    pid_t child = fork();
    if (child < 0) report_append(&r, ",\"fork\":\"refused: %s\"", strerror(errno));
    else if (child == 0) _exit(0);
    else { report_append(&r, ",\"fork\":\"allowed\""); (void)waitpid(child, NULL, 0); }
    report_append(&r, "}}");
}
