# Declarations of process_io.h, the C helpers of child processes
# (handles/process.pyx).


cdef extern from "process_io.h" nogil:
    int ourloop_reap(int pidfd, int pid, int* code)
