/* TEMPORARY stub so the build works before the real core lands; the core helper replaces this file. */
#include <stdlib.h>
#include "irqd/core/xics.h"
struct irqd_xics { int dummy; };
struct irqd_xics * irqd_xics_new(void) { return calloc(1, sizeof(struct irqd_xics)); }
void irqd_xics_free(struct irqd_xics *x) { free(x); }
int irqd_xics_create_ics(struct irqd_xics *x, uint32_t first, uint32_t count, uint32_t flags) { return -95; }
int irqd_xics_connect_vcpu(struct irqd_xics *x, uint32_t server) { return -95; }
int irqd_xics_irq_line(struct irqd_xics *x, uint32_t irq, uint32_t level) { return -95; }
int irqd_xics_irq_batch(struct irqd_xics *x, const struct irqd_irq_batch_entry *entries,
			uint32_t count, uint32_t *nfailed, uint32_t *first_failed) { return -95; }
int irqd_xics_get_source(struct irqd_xics *x, uint64_t attr, uint64_t *value) { return -95; }
int irqd_xics_set_source(struct irqd_xics *x, uint64_t attr, uint64_t value) { return -95; }
int irqd_xics_has_source(struct irqd_xics *x, uint64_t attr) { return -95; }
int irqd_xics_get_icp(struct irqd_xics *x, uint32_t server, uint64_t *value) { return -95; }
int irqd_xics_set_icp(struct irqd_xics *x, uint32_t server, uint64_t value) { return -95; }
int irqd_xics_hcall(struct irqd_xics *x, uint32_t server, uint64_t nr, uint64_t reg[4]) { return -95; }
int irqd_xics_rtas(struct irqd_xics *x, uint32_t token, uint32_t nargs, uint32_t nret,
		   uint32_t buf[12]) { return -95; }
uint64_t irqd_xics_generation(struct irqd_xics *x) { return 0; }
void irqd_xics_set_generation(struct irqd_xics *x, uint64_t generation) {  }
uint32_t irqd_xics_nr_ics(struct irqd_xics *x) { return 0; }
uint32_t irqd_xics_nr_sources(struct irqd_xics *x) { return 0; }
uint32_t irqd_xics_nr_servers(struct irqd_xics *x) { return 0; }
uint32_t irqd_xics_dump_sources(struct irqd_xics *x, uint32_t from_irq,
				struct irqd_source_state *out, uint32_t max) { return 0; }
uint32_t irqd_xics_dump_icps(struct irqd_xics *x, uint32_t from_server,
			     struct irqd_icp_state *out, uint32_t max) { return 0; }
uint32_t irqd_xics_source_stats(struct irqd_xics *x, uint32_t from_irq,
				struct irqd_source_stats *out, uint32_t max) { return 0; }
uint32_t irqd_xics_server_stats(struct irqd_xics *x, uint32_t from_server,
				struct irqd_server_stats *out, uint32_t max) { return 0; }
uint64_t irqd_xics_output_seq(struct irqd_xics *x) { return 0; }
int irqd_xics_output_rises(struct irqd_xics *x, uint32_t server, uint64_t *rises) { return -95; }
int irqd_xics_output_asserted(struct irqd_xics *x, uint32_t server) { return -95; }
int irqd_xics_set_resample(struct irqd_xics *x, uint32_t irq, int on) { return -95; }
uint64_t irqd_xics_ack_seq(struct irqd_xics *x) { return 0; }
uint32_t irqd_xics_drain_acks(struct irqd_xics *x, uint32_t *out, uint32_t max) { return 0; }
uint32_t irqd_xics_export_sources(struct irqd_xics *x, uint32_t from_irq,
				  struct irqd_xics_raw_source *out, uint32_t max) { return 0; }
uint32_t irqd_xics_export_icps(struct irqd_xics *x, uint32_t from_server,
			       struct irqd_xics_raw_icp *out, uint32_t max) { return 0; }
int irqd_xics_import_icp(struct irqd_xics *x, const struct irqd_xics_raw_icp *icp) { return -95; }
int irqd_xics_import_source(struct irqd_xics *x, const struct irqd_xics_raw_source *src) { return -95; }
