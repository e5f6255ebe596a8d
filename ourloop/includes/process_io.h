/* C helpers of child processes (ourloop/handles/process.pyx): the reap of
 * an exited child through its pidfd. Declared for Cython in process_io.pxd. */
#ifndef OURLOOP_PROCESS_IO_H
#define OURLOOP_PROCESS_IO_H

#include <string.h>
#include <errno.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Reap the exited child of pidfd (or pid): 1 and *code set (the
   returncode: exit status, or minus the signal number), 0 if it has not
   exited, -1 with errno set (ECHILD: reaped by someone else). */
static inline int ourloop_reap(int pidfd, int pid, int* code) {
    siginfo_t info;
    int status, r;
    memset(&info, 0, sizeof(info));
    do
        r = waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG);
    while (r == -1 && errno == EINTR);
    if (r == -1 && errno == EINVAL) {
        /* Linux 5.3: pidfds, but no P_PIDFD. */
        do
            r = waitpid(pid, &status, WNOHANG);
        while (r == -1 && errno == EINTR);
        if (r <= 0)
            return r;
        if (WIFSIGNALED(status))
            *code = -WTERMSIG(status);
        else
            *code = WEXITSTATUS(status);
        return 1;
    }
    if (r == -1)
        return -1;
    if (info.si_pid == 0)
        return 0;
    if (info.si_code == CLD_EXITED)
        *code = info.si_status;
    else
        *code = -info.si_status;
    return 1;
}

#endif
