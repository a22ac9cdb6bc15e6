/* The all-reduce benchmark of examples/all_reduce.rs in C on MPI alone, the figure
 * kiln's World is compared with: sums of f32 buffers of 4 KiB to 16 MiB, blocking
 * (MPI_Allreduce) or, with --nonblocking, MPI_Iallreduce polled with MPI_Test as
 * kiln polls it.
 *
 *   mpicc -O2 -o /tmp/all_reduce crates/distributed/examples/all_reduce.c
 *   mpirun -np 2 /tmp/all_reduce [--nonblocking]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void all_reduce(const float *send, float *recv, int n, int nonblocking) {
    if (!nonblocking) {
        MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        return;
    }
    MPI_Request request;
    int done = 0;
    MPI_Iallreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request);
    while (!done) {
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int nonblocking = argc > 1 && strcmp(argv[1], "--nonblocking") == 0;
    if (rank == 0) {
        printf("MPI_%sallreduce, %d ranks\n", nonblocking ? "I" : "", size);
    }
    for (long bytes = 4096; bytes <= 16L << 20; bytes *= 4) {
        int n = (int)(bytes / 4);
        float *send = malloc(bytes), *recv = malloc(bytes);
        for (int i = 0; i < n; i++) {
            send[i] = 1.0f;
        }
        int rounds = bytes <= 65536 ? 2000 : bytes <= (1L << 20) ? 200 : 20;
        for (int i = 0; i < 10; i++) {
            all_reduce(send, recv, n, nonblocking);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double started = MPI_Wtime();
        for (int i = 0; i < rounds; i++) {
            all_reduce(send, recv, n, nonblocking);
        }
        double seconds = (MPI_Wtime() - started) / rounds;
        MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (rank == 0) {
            printf("%9ld bytes: %9.1f us, bus bandwidth %6.2f GB/s\n", bytes, seconds * 1e6,
                   2.0 * (size - 1) / size * bytes / seconds / 1e9);
        }
        free(send);
        free(recv);
    }
    MPI_Finalize();
    return 0;
}
