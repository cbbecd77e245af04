/* SPDX-License-Identifier: MIT */
/*
 * Shared-memory trigger rings: the daemon's consumer (see ring.h for the
 * LOCKING / INVARIANTS, abi.h RING_SETUP for the protocol).
 *
 * One consumer thread per ring.  It applies what the producer posted, then
 * busy-polls head for a bounded window (adaptive: it grows when work arrives
 * just after the consumer went to sleep, shrinks when the window keeps
 * expiring with nothing coming; at most ~50 us with 4 or more online CPUs,
 * half that with 2-3, none on a one-CPU machine where spinning would only
 * steal the producer's CPU; once idle for a microsecond the spin offers its CPU
 * with sched_yield() so a producer on the same CPU gets to run, less often
 * when nobody takes it), then announces need_wakeup and
 * sleeps on the doorbell eventfd (and on a private stop eventfd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "irqd/core/ring.h"
#include "irqd/ring_producer.h"

#ifndef F_GET_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SHRINK 0x0002
#endif
#define RING_TMPFS_MAGIC 0x01021994  /* linux/magic.h TMPFS_MAGIC: memfd_create's shmem */
#define RING_CHUNK 256               /* entries copied out and applied per core call */
#define RING_SPIN_MAX_NS 50000       /* ~50 us after the last entry, on >= 4 CPUs */
#define RING_SPIN_MIN_NS 1000
#define RING_YIELD_MIN_NS 1000       /* idle time before the spin first offers its CPU */
#define RING_YIELD_BUSY_NS 3000      /* a sched_yield longer than this let someone run */

struct irqd_ring {
	pthread_mutex_t lock;       /* held while applying: x may be swapped under it */
	struct irqd_xics *x;
	struct irqd_ring_hdr *hdr;
	struct irqd_irq_batch_entry *ent;
	size_t map_len;
	uint32_t entries, mask;
	int doorbell, stopfd, notify_fd;
	pthread_t thread;
	atomic_int stop;
	atomic_int notify_pending;
	uint64_t tail;              /* private: never read back from shared memory */
	uint64_t spin_max_ns;
	_Atomic uint64_t spin_ns;
	_Atomic uint64_t applied, errors, resyncs, sleeps;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void publish_counters(struct irqd_ring *r)
{
	struct irqd_ring_hdr *h = r->hdr;
	atomic_store_explicit(IRQD_RING_A64(&h->errors), atomic_load_explicit(&r->errors, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(IRQD_RING_A64(&h->applied), atomic_load_explicit(&r->applied, memory_order_relaxed),
			      memory_order_relaxed);
	/* release: whoever sees the new tail sees the entries' effects */
	atomic_store_explicit(IRQD_RING_A64(&h->tail), r->tail, memory_order_release);
}

/* Apply [tail, head) -- head already validated: head - tail <= entries. */
static void consume(struct irqd_ring *r, uint64_t head)
{
	struct irqd_irq_batch_entry buf[RING_CHUNK];
	while (r->tail != head) {
		uint64_t avail = head - r->tail;
		uint32_t n = avail > RING_CHUNK ? RING_CHUNK : (uint32_t)avail, i, nfailed = 0, first = 0;
		uint64_t out0, ack0;
		int changed;
		for (i = 0; i < n; i++) {
			/* one load per entry: the core sees exactly one value */
			uint64_t v = atomic_load_explicit(IRQD_RING_A64(&r->ent[(r->tail + i) & r->mask]),
							  memory_order_relaxed);
			buf[i].irq = (uint32_t)v;
			buf[i].level = (uint32_t)(v >> 32);
		}
		pthread_mutex_lock(&r->lock);
		out0 = irqd_xics_output_seq(r->x);
		ack0 = irqd_xics_ack_seq(r->x);
		irqd_xics_irq_batch(r->x, buf, n, &nfailed, &first);
		changed = irqd_xics_output_seq(r->x) != out0 || irqd_xics_ack_seq(r->x) != ack0;
		pthread_mutex_unlock(&r->lock);
		atomic_fetch_add_explicit(&r->applied, n - nfailed, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->errors, nfailed, memory_order_relaxed);
		r->tail += n;
		publish_counters(r);
		if (changed && !atomic_exchange(&r->notify_pending, 1)) {
			uint64_t one = 1;
			ssize_t rc = write(r->notify_fd, &one, sizeof(one));
			(void)rc;   /* EAGAIN only if saturated: the daemon is woken anyway */
		}
	}
}

/* Look at head once: 1 if there was work (done now), 0 if idle. */
static int poll_once(struct irqd_ring *r, memory_order mo)
{
	uint64_t head = atomic_load_explicit(IRQD_RING_A64(&r->hdr->head), mo);
	if (head == r->tail)
		return 0;
	if (head - r->tail > r->entries) {
		/* garbage head (or a producer that overran): skip to it */
		atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->resyncs, 1, memory_order_relaxed);
		r->tail = head;
		publish_counters(r);
		return 1;
	}
	consume(r, head);
	return 1;
}

static void drain(int fd)
{
	uint64_t v;
	struct iovec iov = { &v, sizeof(v) };
	/* RWF_NOWAIT: never block, whatever the client did with its doorbell */
	ssize_t rc = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	if (rc < 0 && (errno == EOPNOTSUPP || errno == EINVAL))
		rc = read(fd, &v, sizeof(v));   /* older kernels: may block, cancellable (see consumer) */
	(void)rc;
}

static void *consumer(void *arg)
{
	struct irqd_ring *r = arg;
	_Atomic uint32_t *need = IRQD_RING_A32(&r->hdr->need_wakeup);
	uint64_t last = now_ns(), slept_at = 0, last_yield = 0, yield_every = RING_YIELD_MIN_NS;
	int oldstate;

	/* cancellable only while asleep (see below); never inside the core */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		uint64_t spin = atomic_load_explicit(&r->spin_ns, memory_order_relaxed), t;
		if (poll_once(r, memory_order_acquire)) {
			last = now_ns();
			continue;
		}
		t = now_ns();
		if (t - last < spin) {
			/* watch head closely (no syscall: a sched_yield costs more
			 * than the whole trigger on a VM) */
			for (int i = 0; i < 128; i++) {
				if (atomic_load_explicit(IRQD_RING_A64(&r->hdr->head), memory_order_relaxed) != r->tail)
					break;
				cpu_relax();
			}
			/* ... but once idle for yield_every, offer the CPU: a producer
			 * on this same CPU cannot post while we spin.  A yield that
			 * comes straight back (nobody else wanted the CPU) doubles the
			 * interval, up to the window; one that lets someone run resets it. */
			if (t - last >= yield_every && t - last_yield >= yield_every) {
				sched_yield();
				last_yield = now_ns();
				if (last_yield - t < RING_YIELD_BUSY_NS)
					yield_every = yield_every * 2 > spin ? spin : yield_every * 2;
				else
					yield_every = RING_YIELD_MIN_NS;
			}
			continue;
		}
		/* announce the sleep, then look again: pairs with the producer's
		 * (store head; seq_cst fence; load need_wakeup) */
		atomic_store_explicit(need, 1, memory_order_seq_cst);
		atomic_thread_fence(memory_order_seq_cst);
		if (poll_once(r, memory_order_seq_cst)) {
			atomic_store_explicit(need, 0, memory_order_relaxed);
			last = now_ns();
			continue;
		}
		atomic_fetch_add_explicit(&r->sleeps, 1, memory_order_relaxed);
		slept_at = now_ns();
		{
			/* The doorbell keeps the client's blocking mode (its file
			 * description is shared: setting O_NONBLOCK would change the
			 * client's fd too), so drain() reads with RWF_NOWAIT.  Where
			 * the kernel lacks it, a plain read after POLLIN could block
			 * if the client drained its own doorbell meanwhile: hence
			 * this is the one place the thread may be cancelled
			 * (irqd_ring_stop); it holds no lock here. */
			struct pollfd p[2] = { { r->doorbell, POLLIN, 0 }, { r->stopfd, POLLIN, 0 } };
			int rc, old;
			pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
			rc = poll(p, 2, -1);
			if (rc > 0 && (p[0].revents & POLLIN) && !(p[1].revents & POLLIN))
				drain(r->doorbell);
			pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
			if (rc < 0 && errno != EINTR)
				break;
			if (p[0].revents & (POLLERR | POLLNVAL))
				break;
		}
		atomic_store_explicit(need, 0, memory_order_relaxed);
		/* adapt the window: work soon after falling asleep means the
		 * window was too short; a long quiet period, that it is wasted */
		t = now_ns();
		if (r->spin_max_ns) {
			uint64_t dt = t - slept_at;
			if (dt < r->spin_max_ns)
				spin = spin * 2 > r->spin_max_ns ? r->spin_max_ns : spin * 2;
			else if (dt > 100 * r->spin_max_ns)
				spin = spin / 2 < RING_SPIN_MIN_NS ? RING_SPIN_MIN_NS : spin / 2;
			atomic_store_explicit(&r->spin_ns, spin, memory_order_relaxed);
		}
		last = t;
	}
	return NULL;
}

/* Online CPUs, not our affinity: a daemon pinned to one CPU may still have
 * its producers on others, and the spin yields to local competitors. */
static int cpus_online(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

#define WHY(...) do { if (why && why_len) snprintf(why, why_len, __VA_ARGS__); } while (0)

int irqd_ring_start(struct irqd_xics *x, int memfd, int doorbell, uint32_t log2, int notify_fd,
		    struct irqd_ring **out, char *why, uint32_t why_len)
{
	struct irqd_ring *r;
	struct stat st;
	struct statfs sfs;
	int seals, rc, ncpu;
	uint64_t need, head, tail;
	void *mem;
	sigset_t all, old;
	struct irqd_ring_hdr *h;

	*out = NULL;
	if (log2 < IRQD_RING_MIN_LOG2 || log2 > IRQD_RING_MAX_LOG2) {
		WHY("entries_log2 %u is outside %u..%u", log2, IRQD_RING_MIN_LOG2, IRQD_RING_MAX_LOG2);
		return -EINVAL;
	}
	need = irqd_ring_bytes(log2);
	if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode) || fstatfs(memfd, &sfs) < 0 ||
	    (unsigned long)sfs.f_type != RING_TMPFS_MAGIC) {
		WHY("ring fd is not a memfd (memfd_create)");
		return -EINVAL;
	}
	seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0) {
		WHY("ring fd is not a memfd that allows sealing (MFD_ALLOW_SEALING)");
		return -EINVAL;
	}
	if (!(seals & F_SEAL_SHRINK)) {
		WHY("ring memfd must be sealed with F_SEAL_SHRINK");
		return -EINVAL;
	}
	if ((uint64_t)st.st_size < need) {
		WHY("ring memfd has %lld bytes, %llu needed for 2^%u entries", (long long)st.st_size,
		    (unsigned long long)need, log2);
		return -EINVAL;
	}
	mem = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED) {
		WHY("cannot map the ring memfd shared read-write: %s", strerror(errno));
		return -EINVAL;
	}
	h = mem;
	head = atomic_load_explicit(IRQD_RING_A64(&h->head), memory_order_acquire);
	tail = atomic_load_explicit(IRQD_RING_A64(&h->tail), memory_order_relaxed);
	if (h->magic != IRQD_RING_MAGIC || h->version != IRQD_RING_VERSION || h->entries != (1u << log2) ||
	    head - tail > (1u << log2)) {
		WHY("ring header is not a fresh ring of 2^%u entries (magic 0x%x version %u entries %u)", log2,
		    h->magic, h->version, h->entries);
		munmap(mem, need);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		munmap(mem, need);
		WHY("out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->x = x;
	r->hdr = h;
	r->ent = irqd_ring_entries(mem);
	r->map_len = need;
	r->entries = 1u << log2;
	r->mask = r->entries - 1;
	r->doorbell = doorbell;
	r->notify_fd = notify_fd;
	r->tail = tail;
	ncpu = cpus_online();
	/* spinning on one CPU only delays the producer; on 2-3, a short window */
	r->spin_max_ns = ncpu >= 4 ? RING_SPIN_MAX_NS : ncpu >= 2 ? RING_SPIN_MAX_NS / 2 : 0;
	atomic_store(&r->spin_ns, r->spin_max_ns);
	r->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stopfd < 0) {
		rc = -errno;
		goto fail;
	}
	/* the consumer gets no signal: Python's handlers run on the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&r->thread, NULL, consumer, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		close(r->stopfd);
		goto fail;
	}
	*out = r;
	return 0;
fail:
	WHY("cannot start the ring consumer: %s", strerror(-rc));
	pthread_mutex_destroy(&r->lock);
	munmap(mem, need);
	free(r);
	return rc;
}

void irqd_ring_stop(struct irqd_ring *r)
{
	uint64_t one = 1;
	ssize_t rc;
	if (!r)
		return;
	atomic_store(&r->stop, 1);
	rc = write(r->stopfd, &one, sizeof(one));
	(void)rc;
	/* The consumer sees stop (or wakes on stopfd) and returns.  Only on a
	 * kernel without RWF_NOWAIT for eventfds can it be stuck in
	 * read(doorbell) (its client stole the count): cancelled there after
	 * a grace period.  (Not cancelled by default: cancellation unwinds the
	 * stack, which sanitizers and some runtimes take badly.) */
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (pthread_timedjoin_np(r->thread, NULL, &ts) != 0) {
			pthread_cancel(r->thread);
			pthread_join(r->thread, NULL);
		}
	}
	close(r->stopfd);
	close(r->doorbell);
	munmap(r->hdr, r->map_len);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void irqd_ring_set_xics(struct irqd_ring *r, struct irqd_xics *x)
{
	pthread_mutex_lock(&r->lock);
	r->x = x;
	pthread_mutex_unlock(&r->lock);
}

int irqd_ring_take_notify(struct irqd_ring *r)
{
	return atomic_exchange(&r->notify_pending, 0);
}

void irqd_ring_get_stats(struct irqd_ring *r, struct irqd_ring_stats *s)
{
	s->applied = atomic_load_explicit(&r->applied, memory_order_relaxed);
	s->errors = atomic_load_explicit(&r->errors, memory_order_relaxed);
	s->resyncs = atomic_load_explicit(&r->resyncs, memory_order_relaxed);
	s->sleeps = atomic_load_explicit(&r->sleeps, memory_order_relaxed);
	s->spin_ns = atomic_load_explicit(&r->spin_ns, memory_order_relaxed);
}

/* ---- producer entry points for cffi (the protocol: ring_producer.h) ---- */

uint64_t irqd_ring_size(uint32_t log2)
{
	return irqd_ring_bytes(log2);
}

int irqd_ring_init(uint8_t *mem, uint64_t size, uint32_t log2)
{
	return irqd_ring_format(mem, size, log2);
}

int irqd_ring_post(uint8_t *mem, int doorbell, uint32_t irq, uint32_t level)
{
	return irqd_ring_post1(mem, doorbell, irq, level);
}

uint32_t irqd_ring_post_batch(uint8_t *mem, int doorbell, const struct irqd_irq_batch_entry *e, uint32_t n)
{
	return irqd_ring_post_many(mem, doorbell, e, n);
}

uint64_t irqd_ring_unconsumed(uint8_t *mem)
{
	return irqd_ring_pending(mem);
}
