/* SPDX-License-Identifier: MIT */
/*
 * irqd wire ABI, version 1 -- the single machine-readable source of
 * ../shared/abi.md (sections 2-4) and of the KVM/PAPR numbers in
 * xics-constants.md that the core and clients need.
 *
 * Layout rules (abi.md section 1): little-endian, natural alignment, no
 * implicit padding; every struct below is pinned with static asserts on its
 * size and field offsets.  Messages start at 4-byte aligned offsets of a
 * record, so a u64 may be only 4-byte aligned on the wire: read messages with
 * memcpy(), never through a cast pointer into the record.
 *
 * Choices this header makes where abi.md is silent (also in the issue note):
 *  - IRQD_MAX_SERVERS = 2048 (ppc64 KVM_MAX_VCPUS), IRQD_MAX_RECORD = 65536,
 *    IRQD_MAX_FDS = 253 (SCM_MAX_FD).
 *  - CONNECT_VCPU.flags and SOURCE/ICP state requests have no flag bits
 *    defined: any set bit is an unknown flag (EINVAL).
 *  - Project extensions (types >= 0x40) are listed at the end.
 *
 * The block between the IRQD-CDEF markers is plain C that cffi's cdef()
 * parses (no #include, #if or expression macros); the build script extracts
 * it.  Everything outside the markers is for the C compiler only.
 */
#ifndef IRQD_ABI_H
#define IRQD_ABI_H

#include <stdint.h>
#include <stddef.h>

/* IRQD-CDEF-BEGIN */

/* ---- ABI version, limits (HELLO reports them) ---- */
#define IRQD_ABI_VERSION            1
#define IRQD_MAX_RECORD             65536
#define IRQD_MAX_FDS                253
#define IRQD_MAX_SERVERS            2048
#define IRQD_DEFAULT_SOCKET         "/run/irqd/irqd.sock"

/* ---- netlink header flags (abi.md section 2) ---- */
#define IRQD_NLM_F_REQUEST          0x001
#define IRQD_NLM_F_MULTI            0x002
#define IRQD_NLM_F_ACK              0x004
#define IRQD_NLM_F_DUMP_INTR        0x010
#define IRQD_NLM_F_ROOT             0x100
#define IRQD_NLM_F_MATCH            0x200
#define IRQD_NLM_F_DUMP             0x300
#define IRQD_NLM_F_CAPPED           0x100
#define IRQD_NLM_F_ACK_TLVS         0x200
#define IRQD_NLMSG_HDRLEN           16
#define IRQD_NLMSG_ALIGNTO          4

/* extended-ack attribute types (ERROR payload) */
#define IRQD_NLMSGERR_ATTR_MSG      1
#define IRQD_NLMSGERR_ATTR_OFFS     2

/* ---- message types (abi.md section 4) ---- */
#define IRQD_MSG_NOOP               0x01
#define IRQD_MSG_ERROR              0x02
#define IRQD_MSG_DONE               0x03
#define IRQD_MSG_HELLO              0x10
#define IRQD_MSG_CREATE_DEVICE      0x11
#define IRQD_MSG_DESTROY_DEVICE     0x12
#define IRQD_MSG_ATTACH             0x13
#define IRQD_MSG_LIST_DEVICES       0x14
#define IRQD_MSG_IRQ_LINE           0x15
#define IRQD_MSG_IRQ_LINE_BATCH     0x16
#define IRQD_MSG_SET_DEVICE_ATTR    0x17
#define IRQD_MSG_GET_DEVICE_ATTR    0x18
#define IRQD_MSG_HAS_DEVICE_ATTR    0x19
#define IRQD_MSG_CREATE_ICS         0x1A
#define IRQD_MSG_CONNECT_VCPU       0x1B
#define IRQD_MSG_GET_ONE_REG        0x1C
#define IRQD_MSG_SET_ONE_REG        0x1D
#define IRQD_MSG_HCALL              0x1E
#define IRQD_MSG_RTAS               0x1F
#define IRQD_MSG_IRQFD              0x20
#define IRQD_MSG_SET_OUTPUT         0x21
#define IRQD_MSG_DUMP_STATE         0x22
#define IRQD_MSG_SOURCE_STATE       0x23
#define IRQD_MSG_ICP_STATE          0x24
#define IRQD_MSG_GET_STATS          0x25
#define IRQD_MSG_SOURCE_STATS       0x25
#define IRQD_MSG_SERVER_STATS       0x26
#define IRQD_MSG_RESTORE_BEGIN      0x27
#define IRQD_MSG_RESTORE_COMMIT     0x28
#define IRQD_MSG_RESTORE_ABORT      0x29

/* ---- operation flags ---- */
#define IRQD_CREATE_TEST            1   /* = KVM_CREATE_DEVICE_TEST */
#define IRQD_CREATE_PERSIST         2
#define IRQD_ICS_LEVEL              1
#define IRQD_IRQFD_DEASSIGN         1   /* = KVM_IRQFD_FLAG_DEASSIGN */
#define IRQD_IRQFD_RESAMPLE         2   /* = KVM_IRQFD_FLAG_RESAMPLE */
#define IRQD_OUTPUT_DEASSIGN        1

/* ---- RTAS (irqd's own tokens, xics-constants.md section 8) ---- */
#define IRQD_RTAS_SET_XIVE          1
#define IRQD_RTAS_GET_XIVE          2
#define IRQD_RTAS_INT_OFF           3
#define IRQD_RTAS_INT_ON            4
#define IRQD_RTAS_BUF_WORDS         12
#define IRQD_RTAS_SUCCESS           0
#define IRQD_RTAS_HW_ERROR          -1
#define IRQD_RTAS_BUSY              -2
#define IRQD_RTAS_PARAM_ERROR       -3

/* ---- KVM device and interrupt numbers (xics-constants.md 1, 5, 6) ---- */
#define IRQD_KVM_DEV_TYPE_XICS      3
#define IRQD_KVM_DEV_XICS_GRP_SOURCES 1
#define IRQD_KVM_DEV_XICS_GRP_CTRL  2
#define IRQD_KVM_INTERRUPT_SET      0xFFFFFFFF
#define IRQD_KVM_INTERRUPT_UNSET    0xFFFFFFFE
#define IRQD_KVM_INTERRUPT_SET_LEVEL 0xFFFFFFFD
#define IRQD_KVMPPC_XICS_ICS_SHIFT  10
#define IRQD_KVMPPC_XICS_IRQ_PER_ICS 1024
#define IRQD_KVMPPC_XICS_SRC_MASK   0x3FF
#define IRQD_KVMPPC_XICS_MAX_ICS_ID 1023
#define IRQD_KVMPPC_XICS_FIRST_IRQ  16
#define IRQD_KVMPPC_XICS_NR_IRQS    1048576
#define IRQD_XICS_MASKED            0xFF
#define IRQD_XICS_IPI               2
#define IRQD_XICS_IRQ_SPURIOUS      0
#define IRQD_PQ_PRESENTED           1
#define IRQD_PQ_QUEUED              2
#define IRQD_ICP_RESEND_MAP_SIZE    16

/* ---- source state word, KVM_DEV_XICS_GRP_SOURCES (xics-constants.md 2) ---- */
#define IRQD_KVM_XICS_DESTINATION_SHIFT 0
#define IRQD_KVM_XICS_DESTINATION_MASK  0xFFFFFFFF
#define IRQD_KVM_XICS_PRIORITY_SHIFT    32
#define IRQD_KVM_XICS_PRIORITY_MASK     0xFF
#define IRQD_KVM_XICS_LEVEL_SENSITIVE   0x0000010000000000
#define IRQD_KVM_XICS_MASKED            0x0000020000000000
#define IRQD_KVM_XICS_PENDING           0x0000040000000000
#define IRQD_KVM_XICS_PRESENTED         0x0000080000000000
#define IRQD_KVM_XICS_QUEUED            0x0000100000000000

/* ---- ICP state word, KVM_REG_PPC_ICP_STATE (xics-constants.md 3) ---- */
#define IRQD_KVM_REG_PPC_ICP_STATE      0x103000000000008C
#define IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT 56
#define IRQD_KVM_REG_PPC_ICP_CPPR_MASK  0xFF
#define IRQD_KVM_REG_PPC_ICP_XISR_SHIFT 32
#define IRQD_KVM_REG_PPC_ICP_XISR_MASK  0xFFFFFF
#define IRQD_KVM_REG_PPC_ICP_MFRR_SHIFT 24
#define IRQD_KVM_REG_PPC_ICP_MFRR_MASK  0xFF
#define IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT 16
#define IRQD_KVM_REG_PPC_ICP_PPRI_MASK  0xFF

/* ---- PAPR hypervisor calls and statuses (xics-constants.md 7) ---- */
#define IRQD_H_EOI                  0x64
#define IRQD_H_CPPR                 0x68
#define IRQD_H_IPI                  0x6C
#define IRQD_H_IPOLL                0x70
#define IRQD_H_XIRR                 0x74
#define IRQD_H_XIRR_X               0x2FC
#define IRQD_H_SUCCESS              0
#define IRQD_H_HARDWARE             -1
#define IRQD_H_PARAMETER            -4

/* ---- Linux errno values used on the wire (xics-constants.md 9) ---- */
#define IRQD_EPERM                  1
#define IRQD_ENOENT                 2
#define IRQD_ENXIO                  6
#define IRQD_E2BIG                  7
#define IRQD_EBADF                  9
#define IRQD_ENOMEM                 12
#define IRQD_EACCES                 13
#define IRQD_EBUSY                  16
#define IRQD_EEXIST                 17
#define IRQD_ENODEV                 19
#define IRQD_EINVAL                 22
#define IRQD_ENOSPC                 28
#define IRQD_EMSGSIZE               90
#define IRQD_EOPNOTSUPP             95

/* ---- project extensions (types >= 0x40; HELLO feature bits) ---- */
#define IRQD_FEAT_RING              1   /* 0x40 RING_SETUP: shared-memory trigger ring */
#define IRQD_MSG_RING_SETUP         0x40

/*
 * 0x40 RING_SETUP: a shared-memory trigger ring (HELLO feature IRQD_FEAT_RING).
 *
 * Request struct irqd_ring_setup + 2 fds (SCM_RIGHTS): the ring memfd, then
 * the doorbell eventfd; with flags IRQD_RING_DEASSIGN, no fd (removes the
 * device's ring).  Answered like IRQFD (ERROR(0) with ACK).  One ring per
 * device: a second assign is EEXIST.  The ring belongs to the device
 * (DESTROY_DEVICE, the last holder leaving, daemon shutdown remove it); it
 * is not carried over a daemon restart (the client sets it up again).
 * Errors: entries_log2 outside [IRQD_RING_MIN_LOG2, IRQD_RING_MAX_LOG2],
 * a doorbell that is not an eventfd, a memfd that is not a tmpfs memfd
 * (F_GET_SEALS fails), lacks F_SEAL_SHRINK (so it can never shrink under the
 * daemon's mapping: no SIGBUS), cannot be mapped shared read-write, is
 * smaller than IRQD_RING_HDR_SIZE + 8 << entries_log2, or whose header has a
 * wrong magic / version / entries or head - tail > entries: EINVAL.  Wrong fd
 * count: EBADF.  Already a ring: EEXIST; DEASSIGN without one: ENOENT.
 * The doorbell counts against --max-fds-per-uid (the memfd is closed once
 * mapped): ENOSPC.
 *
 * Layout: struct irqd_ring_hdr (one page), then 1 << entries_log2 entries
 * struct irqd_irq_batch_entry { irq, level } (same values as IRQ_LINE).
 * The client formats the header (magic, version, entries, head = tail = 0)
 * before RING_SETUP.  Every hot field has its own 64-byte cache line.
 *
 * Protocol (single producer; C11 atomics, indices are free-running u64):
 *  producer: if head - tail == entries the ring is full (backpressure: retry
 *    later, nothing is overwritten); write entry[head & (entries-1)]; store-
 *    release head+1; full fence; if need_wakeup: exchange it to 0 and, if it
 *    was 1, write 1 to the doorbell.
 *  consumer (the daemon): load-acquire head; if head - tail > entries the
 *    header is garbage: count an error, tail := head (resync); else copy the
 *    entries [tail, head) masked by entries-1 out of shared memory, apply
 *    each as an IRQ_LINE (failures counted in `errors`, successes in
 *    `applied`), store-release tail.  When idle it busy-polls for a bounded,
 *    adaptive time, then stores need_wakeup = 1, full fence, re-reads head
 *    (no lost wakeup) and sleeps on the doorbell.
 * The daemon reads nothing from the ring but head and entries, keeps its own
 * tail and counters (it never reads tail, errors, applied back), and copies
 * each entry once before validating it: a client scribbling over its ring
 * only hurts its own device's interrupts and gets errors counted.
 */
#define IRQD_RING_DEASSIGN          1
#define IRQD_RING_MAGIC             0x676E7269  /* "irng" little-endian */
#define IRQD_RING_VERSION           1
#define IRQD_RING_HDR_SIZE          4096
#define IRQD_RING_MIN_LOG2          4
#define IRQD_RING_MAX_LOG2          16

struct irqd_ring_setup {        /* 0x40 */
	uint32_t handle;
	uint32_t flags;
	uint32_t entries_log2;
	uint32_t reserved;
};

struct irqd_ring_hdr {          /* the first IRQD_RING_HDR_SIZE bytes of the memfd */
	uint32_t magic;             /* IRQD_RING_MAGIC (client, before setup) */
	uint32_t version;           /* IRQD_RING_VERSION */
	uint32_t entries;           /* 1 << entries_log2 */
	uint32_t pad0[13];
	uint64_t head;              /* producer: entries posted (free-running) */
	uint64_t pad1[7];
	uint64_t tail;              /* consumer: entries consumed */
	uint64_t pad2[7];
	uint32_t need_wakeup;       /* consumer: 1 = asleep, write the doorbell */
	uint32_t pad3[15];
	uint64_t errors;            /* consumer: bad entries + resyncs */
	uint64_t pad4[7];
	uint64_t applied;           /* consumer: entries applied successfully */
	uint64_t pad5[7];
	uint8_t reserved[3712];
};

/* ---- structs (abi.md sections 2 and 4) ---- */
struct irqd_msghdr {            /* = struct nlmsghdr */
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t seq;
	uint32_t pid;
};

struct irqd_hello {             /* 0x10 */
	uint32_t version;
	uint32_t features;
	uint32_t max_record;
	uint32_t max_devices;
	uint32_t max_servers;
	uint32_t max_irqs;
	uint32_t max_fds;
	uint32_t reserved;
};

struct irqd_create_device {     /* 0x11 */
	uint32_t type;
	uint32_t handle;
	uint32_t flags;
	uint32_t reserved;
};

struct irqd_handle {            /* 0x12, 0x13, 0x22, 0x25, 0x27-0x29 */
	uint32_t handle;
	uint32_t reserved;
};

struct irqd_device_info {       /* 0x14 reply */
	uint32_t handle;
	uint32_t type;
	uint32_t owner_uid;
	uint32_t flags;
	uint32_t nr_ics;
	uint32_t nr_sources;
	uint32_t nr_servers;
	uint32_t holders;
	uint64_t generation;
};

struct irqd_irq_level {         /* 0x15 */
	uint32_t handle;
	uint32_t irq;
	uint32_t level;
	uint32_t reserved;
};

struct irqd_irq_batch_entry {
	uint32_t irq;
	uint32_t level;
};

struct irqd_irq_batch {         /* 0x16, followed by count entries */
	uint32_t handle;
	uint32_t count;
};

struct irqd_device_attr {       /* 0x17, 0x18, 0x19 */
	uint32_t handle;
	uint32_t flags;
	uint32_t group;
	uint32_t reserved;
	uint64_t attr;
	uint64_t value;
};

struct irqd_create_ics {        /* 0x1A */
	uint32_t handle;
	uint32_t first_irq;
	uint32_t count;
	uint32_t flags;
};

struct irqd_connect_vcpu {      /* 0x1B */
	uint32_t handle;
	uint32_t server;
	uint32_t flags;
	uint32_t reserved;
};

struct irqd_one_reg {           /* 0x1C, 0x1D */
	uint32_t handle;
	uint32_t server;
	uint64_t id;
	uint64_t value;
};

struct irqd_hcall {             /* 0x1E */
	uint32_t handle;
	uint32_t server;
	uint64_t nr;
	uint64_t reg[4];
};

struct irqd_rtas {              /* 0x1F */
	uint32_t handle;
	uint32_t token;
	uint32_t nargs;
	uint32_t nret;
	uint32_t buf[12];
};

struct irqd_irqfd {             /* 0x20 */
	uint32_t handle;
	uint32_t gsi;
	uint32_t flags;
	uint32_t reserved;
};

struct irqd_output {            /* 0x21 */
	uint32_t handle;
	uint32_t server;
	uint32_t flags;
	uint32_t reserved;
};

struct irqd_source_state {      /* 0x23 */
	uint32_t handle;
	uint32_t irq;
	uint64_t state;
};

struct irqd_icp_state {         /* 0x24 */
	uint32_t handle;
	uint32_t server;
	uint64_t state;
};

struct irqd_source_stats {      /* 0x25 reply */
	uint32_t handle;
	uint32_t irq;
	uint32_t triggers;
	uint32_t deliveries;
};

struct irqd_server_stats {      /* 0x26 */
	uint32_t handle;
	uint32_t server;
	uint32_t deliveries;
	uint32_t rejects;
	uint32_t resends;
	uint32_t ipis;
};

struct irqd_error {             /* 0x02 payload head: error, then echoed header */
	int32_t error;
	struct irqd_msghdr msg;
};

struct irqd_done {              /* 0x03 payload */
	int32_t error;
};

struct irqd_nlattr {            /* extended-ack attribute header */
	uint16_t len;
	uint16_t type;
};

/* IRQD-CDEF-END */

/* ---- compile-time layout checks (abi.md sizes and offsets) ---- */
#ifdef __cplusplus
#define IRQD_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define IRQD_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
#define IRQD_CHECK_SIZE(s, n) \
	IRQD_STATIC_ASSERT(sizeof(struct s) == (n), #s " size")
#define IRQD_CHECK_OFF(s, f, n) \
	IRQD_STATIC_ASSERT(offsetof(struct s, f) == (n), #s "." #f " offset")

IRQD_CHECK_SIZE(irqd_msghdr, 16);
IRQD_CHECK_OFF(irqd_msghdr, len, 0);
IRQD_CHECK_OFF(irqd_msghdr, type, 4);
IRQD_CHECK_OFF(irqd_msghdr, flags, 6);
IRQD_CHECK_OFF(irqd_msghdr, seq, 8);
IRQD_CHECK_OFF(irqd_msghdr, pid, 12);

IRQD_CHECK_SIZE(irqd_hello, 32);
IRQD_CHECK_OFF(irqd_hello, version, 0);
IRQD_CHECK_OFF(irqd_hello, features, 4);
IRQD_CHECK_OFF(irqd_hello, max_record, 8);
IRQD_CHECK_OFF(irqd_hello, max_devices, 12);
IRQD_CHECK_OFF(irqd_hello, max_servers, 16);
IRQD_CHECK_OFF(irqd_hello, max_irqs, 20);
IRQD_CHECK_OFF(irqd_hello, max_fds, 24);
IRQD_CHECK_OFF(irqd_hello, reserved, 28);

IRQD_CHECK_SIZE(irqd_create_device, 16);
IRQD_CHECK_OFF(irqd_create_device, type, 0);
IRQD_CHECK_OFF(irqd_create_device, handle, 4);
IRQD_CHECK_OFF(irqd_create_device, flags, 8);
IRQD_CHECK_OFF(irqd_create_device, reserved, 12);

IRQD_CHECK_SIZE(irqd_handle, 8);
IRQD_CHECK_OFF(irqd_handle, handle, 0);
IRQD_CHECK_OFF(irqd_handle, reserved, 4);

IRQD_CHECK_SIZE(irqd_device_info, 40);
IRQD_CHECK_OFF(irqd_device_info, handle, 0);
IRQD_CHECK_OFF(irqd_device_info, type, 4);
IRQD_CHECK_OFF(irqd_device_info, owner_uid, 8);
IRQD_CHECK_OFF(irqd_device_info, flags, 12);
IRQD_CHECK_OFF(irqd_device_info, nr_ics, 16);
IRQD_CHECK_OFF(irqd_device_info, nr_sources, 20);
IRQD_CHECK_OFF(irqd_device_info, nr_servers, 24);
IRQD_CHECK_OFF(irqd_device_info, holders, 28);
IRQD_CHECK_OFF(irqd_device_info, generation, 32);

IRQD_CHECK_SIZE(irqd_irq_level, 16);
IRQD_CHECK_OFF(irqd_irq_level, handle, 0);
IRQD_CHECK_OFF(irqd_irq_level, irq, 4);
IRQD_CHECK_OFF(irqd_irq_level, level, 8);
IRQD_CHECK_OFF(irqd_irq_level, reserved, 12);

IRQD_CHECK_SIZE(irqd_irq_batch_entry, 8);
IRQD_CHECK_OFF(irqd_irq_batch_entry, irq, 0);
IRQD_CHECK_OFF(irqd_irq_batch_entry, level, 4);
IRQD_CHECK_SIZE(irqd_irq_batch, 8);
IRQD_CHECK_OFF(irqd_irq_batch, handle, 0);
IRQD_CHECK_OFF(irqd_irq_batch, count, 4);

IRQD_CHECK_SIZE(irqd_device_attr, 32);
IRQD_CHECK_OFF(irqd_device_attr, handle, 0);
IRQD_CHECK_OFF(irqd_device_attr, flags, 4);
IRQD_CHECK_OFF(irqd_device_attr, group, 8);
IRQD_CHECK_OFF(irqd_device_attr, reserved, 12);
IRQD_CHECK_OFF(irqd_device_attr, attr, 16);
IRQD_CHECK_OFF(irqd_device_attr, value, 24);

IRQD_CHECK_SIZE(irqd_create_ics, 16);
IRQD_CHECK_OFF(irqd_create_ics, handle, 0);
IRQD_CHECK_OFF(irqd_create_ics, first_irq, 4);
IRQD_CHECK_OFF(irqd_create_ics, count, 8);
IRQD_CHECK_OFF(irqd_create_ics, flags, 12);

IRQD_CHECK_SIZE(irqd_connect_vcpu, 16);
IRQD_CHECK_OFF(irqd_connect_vcpu, handle, 0);
IRQD_CHECK_OFF(irqd_connect_vcpu, server, 4);
IRQD_CHECK_OFF(irqd_connect_vcpu, flags, 8);
IRQD_CHECK_OFF(irqd_connect_vcpu, reserved, 12);

IRQD_CHECK_SIZE(irqd_one_reg, 24);
IRQD_CHECK_OFF(irqd_one_reg, handle, 0);
IRQD_CHECK_OFF(irqd_one_reg, server, 4);
IRQD_CHECK_OFF(irqd_one_reg, id, 8);
IRQD_CHECK_OFF(irqd_one_reg, value, 16);

IRQD_CHECK_SIZE(irqd_hcall, 48);
IRQD_CHECK_OFF(irqd_hcall, handle, 0);
IRQD_CHECK_OFF(irqd_hcall, server, 4);
IRQD_CHECK_OFF(irqd_hcall, nr, 8);
IRQD_CHECK_OFF(irqd_hcall, reg, 16);

IRQD_CHECK_SIZE(irqd_rtas, 64);
IRQD_CHECK_OFF(irqd_rtas, handle, 0);
IRQD_CHECK_OFF(irqd_rtas, token, 4);
IRQD_CHECK_OFF(irqd_rtas, nargs, 8);
IRQD_CHECK_OFF(irqd_rtas, nret, 12);
IRQD_CHECK_OFF(irqd_rtas, buf, 16);

IRQD_CHECK_SIZE(irqd_irqfd, 16);
IRQD_CHECK_OFF(irqd_irqfd, handle, 0);
IRQD_CHECK_OFF(irqd_irqfd, gsi, 4);
IRQD_CHECK_OFF(irqd_irqfd, flags, 8);
IRQD_CHECK_OFF(irqd_irqfd, reserved, 12);

IRQD_CHECK_SIZE(irqd_output, 16);
IRQD_CHECK_OFF(irqd_output, handle, 0);
IRQD_CHECK_OFF(irqd_output, server, 4);
IRQD_CHECK_OFF(irqd_output, flags, 8);
IRQD_CHECK_OFF(irqd_output, reserved, 12);

IRQD_CHECK_SIZE(irqd_source_state, 16);
IRQD_CHECK_OFF(irqd_source_state, handle, 0);
IRQD_CHECK_OFF(irqd_source_state, irq, 4);
IRQD_CHECK_OFF(irqd_source_state, state, 8);

IRQD_CHECK_SIZE(irqd_icp_state, 16);
IRQD_CHECK_OFF(irqd_icp_state, handle, 0);
IRQD_CHECK_OFF(irqd_icp_state, server, 4);
IRQD_CHECK_OFF(irqd_icp_state, state, 8);

IRQD_CHECK_SIZE(irqd_source_stats, 16);
IRQD_CHECK_OFF(irqd_source_stats, handle, 0);
IRQD_CHECK_OFF(irqd_source_stats, irq, 4);
IRQD_CHECK_OFF(irqd_source_stats, triggers, 8);
IRQD_CHECK_OFF(irqd_source_stats, deliveries, 12);

IRQD_CHECK_SIZE(irqd_server_stats, 24);
IRQD_CHECK_OFF(irqd_server_stats, handle, 0);
IRQD_CHECK_OFF(irqd_server_stats, server, 4);
IRQD_CHECK_OFF(irqd_server_stats, deliveries, 8);
IRQD_CHECK_OFF(irqd_server_stats, rejects, 12);
IRQD_CHECK_OFF(irqd_server_stats, resends, 16);
IRQD_CHECK_OFF(irqd_server_stats, ipis, 20);

IRQD_CHECK_SIZE(irqd_ring_setup, 16);
IRQD_CHECK_OFF(irqd_ring_setup, handle, 0);
IRQD_CHECK_OFF(irqd_ring_setup, flags, 4);
IRQD_CHECK_OFF(irqd_ring_setup, entries_log2, 8);
IRQD_CHECK_OFF(irqd_ring_setup, reserved, 12);
IRQD_CHECK_SIZE(irqd_ring_hdr, IRQD_RING_HDR_SIZE);
IRQD_CHECK_OFF(irqd_ring_hdr, magic, 0);
IRQD_CHECK_OFF(irqd_ring_hdr, version, 4);
IRQD_CHECK_OFF(irqd_ring_hdr, entries, 8);
IRQD_CHECK_OFF(irqd_ring_hdr, head, 64);
IRQD_CHECK_OFF(irqd_ring_hdr, tail, 128);
IRQD_CHECK_OFF(irqd_ring_hdr, need_wakeup, 192);
IRQD_CHECK_OFF(irqd_ring_hdr, errors, 256);
IRQD_CHECK_OFF(irqd_ring_hdr, applied, 320);

IRQD_CHECK_SIZE(irqd_error, 20);
IRQD_CHECK_OFF(irqd_error, error, 0);
IRQD_CHECK_OFF(irqd_error, msg, 4);
IRQD_CHECK_SIZE(irqd_done, 4);
IRQD_CHECK_SIZE(irqd_nlattr, 4);

/* Netlink alignment helper (not for cdef: an expression macro). */
#define IRQD_NLMSG_ALIGN(len) (((len) + IRQD_NLMSG_ALIGNTO - 1) & ~(IRQD_NLMSG_ALIGNTO - 1))

#endif /* IRQD_ABI_H */
