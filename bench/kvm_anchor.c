/* SPDX-License-Identifier: MIT */
/*
 * The kernel's own interrupt-injection costs on this machine, the peer
 * figures irqd is compared with:
 *
 *   kvm_irq_line     ns per KVM_IRQ_LINE ioctl on a VM with the in-kernel
 *                    irqchip (KVM_CREATE_VM + KVM_CREATE_IRQCHIP; no vCPU is
 *                    needed), the level of one GSI toggled 1, 0, 1, ...
 *   kvm_irqfd_write  ns per write(2) of 1 to an eventfd registered with
 *                    KVM_IRQFD on another GSI (the VFIO / vhost path)
 *
 * Each is the best of 5 equal time slices (--seconds in all), pinned to
 * --cpu.  Without /dev/kvm it prints "skipped: ..." lines and exits 0.
 *
 * usage: kvm_anchor [--cpu N] [--seconds S]
 */
#include "bench.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#define SLICES 5
#define CHUNK 2000
#define GSI_LINE 5
#define GSI_IRQFD 6

static double best_ns_per_op(double seconds, int (*op)(void *, uint64_t), void *arg)
{
	double best = 0;
	uint64_t i = 0;

	for (int s = 0; s < SLICES; s++) {
		uint64_t t0 = now_ns(), t1, n = 0;
		uint64_t limit = (uint64_t)(seconds / SLICES * 1e9);

		do {
			for (int k = 0; k < CHUNK; k++, i++)
				if (op(arg, i) < 0)
					die("kvm_anchor: operation failed: %s", strerror(errno));
			n += CHUNK;
			t1 = now_ns();
		} while (t1 - t0 < limit);
		double ns = (double)(t1 - t0) / (double)n;
		if (s == 0 || ns < best)
			best = ns;
	}
	return best;
}

static int irq_line(void *arg, uint64_t i)
{
	struct kvm_irq_level lvl = { .irq = GSI_LINE, .level = (uint32_t)(i & 1) ^ 1 };

	return ioctl(*(int *)arg, KVM_IRQ_LINE, &lvl);
}

static int efd_write(void *arg, uint64_t i)
{
	uint64_t one = 1;

	(void)i;
	return write(*(int *)arg, &one, sizeof(one)) == sizeof(one) ? 0 : -1;
}

int main(int argc, char **argv)
{
	int cpu = 0, kvm, vm, efd;
	double seconds = 1.0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			cpu = (int)arg_double(argv[++i], "cpu");
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = arg_double(argv[++i], "seconds");
		else
			die("usage: kvm_anchor [--cpu N] [--seconds S]");
	}
	pin_cpu(cpu);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		char why[128];

		snprintf(why, sizeof(why), "/dev/kvm %s", errno == ENOENT ? "absent" : strerror(errno));
		skipped("kvm_irq_line", why);
		skipped("kvm_irqfd_write", why);
		return 0;
	}
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		die("kvm_anchor: unexpected KVM API version");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("kvm_anchor: KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("kvm_anchor: KVM_CREATE_IRQCHIP: %s", strerror(errno));

	figure("kvm_irq_line", best_ns_per_op(seconds, irq_line, &vm), "ns/op");

	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		die("kvm_anchor: eventfd: %s", strerror(errno));
	struct kvm_irqfd irqfd = { .fd = (uint32_t)efd, .gsi = GSI_IRQFD };
	if (ioctl(vm, KVM_IRQFD, &irqfd) < 0)
		die("kvm_anchor: KVM_IRQFD: %s", strerror(errno));
	figure("kvm_irqfd_write", best_ns_per_op(seconds, efd_write, &efd), "ns/op");

	close(efd);
	close(vm);
	close(kvm);
	return 0;
}
