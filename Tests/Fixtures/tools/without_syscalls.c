/* Test tool: runs TARGET as a kernel lacking some features would, by making
 * those system calls fail before TARGET starts (a seccomp filter survives
 * exec). Built by IsolationTests with
 *   -DTARGET='"/path/to/program"' -DENOSYS_CALLS=SYS_a,SYS_b -DEPERM_CALLS=SYS_c
 * and used as the runner executable to prove the sandbox degrades layer by
 * layer, each refusal reported with its reason. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef ENOSYS_CALLS
#define ENOSYS_CALLS -1
#endif
#ifndef EPERM_CALLS
#define EPERM_CALLS -1
#endif

int main(int argc, char **argv) {
    (void)argc;
    static const long enosys[] = { ENOSYS_CALLS }, eperm[] = { EPERM_CALLS };
    struct sock_filter code[64];
    unsigned short n = 0;
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < sizeof enosys / sizeof *enosys; i++) {
        if (enosys[i] < 0) continue;
        code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)enosys[i], 0, 1);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
    }
    for (size_t i = 0; i < sizeof eperm / sizeof *eperm; i++) {
        if (eperm[i] < 0) continue;
        code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)eperm[i], 0, 1);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    }
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog program = { n, code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) {
        perror("without_syscalls");
        return 70;
    }
    execv(TARGET, argv);
    perror("without_syscalls: execv");
    return 71;
}
