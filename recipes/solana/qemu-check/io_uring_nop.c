/*
 * io_uring-nop: sets up an io_uring, submits one IORING_OP_NOP and waits for its completion.
 * Prints "io_uring: nop completed" and exits 0 when the kernel's io_uring works. Static, with
 * raw system calls, so it needs nothing but the kernel.
 */
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	struct io_uring_params params;
	memset(&params, 0, sizeof(params));
	int fd = (int)syscall(__NR_io_uring_setup, 4, &params);
	if (fd < 0) {
		perror("io_uring_setup");
		return 1;
	}
	size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
	size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
			IORING_OFF_SQ_RING);
	char *cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
			IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe),
					 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
					 IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	unsigned *sq_tail = (unsigned *)(sq + params.sq_off.tail);
	unsigned *sq_mask = (unsigned *)(sq + params.sq_off.ring_mask);
	unsigned *sq_array = (unsigned *)(sq + params.sq_off.array);
	unsigned index = *sq_tail & *sq_mask;
	memset(&sqes[index], 0, sizeof(sqes[index]));
	sqes[index].opcode = IORING_OP_NOP;
	sqes[index].user_data = 0x6b696c6e;
	sq_array[index] = index;
	__atomic_store_n(sq_tail, *sq_tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		perror("io_uring_enter");
		return 1;
	}
	unsigned *cq_head = (unsigned *)(cq + params.cq_off.head);
	unsigned *cq_tail = (unsigned *)(cq + params.cq_off.tail);
	unsigned *cq_mask = (unsigned *)(cq + params.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
	if (*cq_head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "io_uring: no completion\n");
		return 1;
	}
	struct io_uring_cqe *cqe = &cqes[*cq_head & *cq_mask];
	if (cqe->user_data != 0x6b696c6e || cqe->res != 0) {
		fprintf(stderr, "io_uring: unexpected completion (user_data %llx, res %d)\n",
			(unsigned long long)cqe->user_data, cqe->res);
		return 1;
	}
	__atomic_store_n(cq_head, *cq_head + 1, __ATOMIC_RELEASE);
	printf("io_uring: nop completed\n");
	return 0;
}
