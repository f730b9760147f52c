// SPDX-License-Identifier: GPL-2.0
/*
 * solana-optimizer: runtime tuning knobs and NUMA memory status for Solana validators.
 *
 * Everything lives under /proc/sys/solana/optimizer/ (see README.md next to this file):
 *
 *   cpu_latency_us      rw  -1..1000000  CPU wake-up latency limit held for the whole system
 *                                        (-1: no limit); visible in /dev/cpu_dma_latency
 *   sample_interval_ms  rw  100..60000   how often free memory per NUMA node is sampled
 *   numa_nodes          ro               online NUMA nodes
 *   node_free_kb        ro               free memory per node, one "nodeN KB" line each
 *   node_free_min_kb    ro               the lowest free memory per node seen by the sampler
 *   samples             ro               samples taken since the module was loaded
 *
 * Writes outside a knob's range fail with EINVAL and leave the value as it was.
 */

#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/pm_qos.h>
#include <linux/slab.h>
#include <linux/sysctl.h>
#include <linux/workqueue.h>

#define OPTIMIZER_PATH "solana/optimizer"
#define TEXT_SIZE 1024

static int cpu_latency_us = -1;
static int cpu_latency_max = 1000000;
static int sample_interval_ms = 1000;
static int sample_interval_min = 100;
static int sample_interval_max = 60000;
static int numa_nodes;
static unsigned long samples;
static unsigned long node_free_min_kb[MAX_NUMNODES];

static DEFINE_MUTEX(optimizer_lock);
static struct pm_qos_request latency_request;
static struct delayed_work sampler;
static struct ctl_table_header *header;

static unsigned long node_free_kb(int nid)
{
	unsigned long pages = 0;
	int i;

	for (i = 0; i < MAX_NR_ZONES; i++)
		pages += zone_page_state(&NODE_DATA(nid)->node_zones[i], NR_FREE_PAGES);
	return pages << (PAGE_SHIFT - 10);
}

static void sample(struct work_struct *work)
{
	int nid;

	mutex_lock(&optimizer_lock);
	for_each_online_node(nid) {
		unsigned long free = node_free_kb(nid);

		if (!samples || free < node_free_min_kb[nid])
			node_free_min_kb[nid] = free;
	}
	samples++;
	mod_delayed_work(system_wq, &sampler, msecs_to_jiffies(sample_interval_ms));
	mutex_unlock(&optimizer_lock);
}

/* Applies cpu_latency_us: a system-wide CPU latency QoS request while it is not -1. */
static void apply_cpu_latency(void)
{
	if (cpu_latency_us < 0) {
		if (cpu_latency_qos_request_active(&latency_request))
			cpu_latency_qos_remove_request(&latency_request);
	} else if (cpu_latency_qos_request_active(&latency_request)) {
		cpu_latency_qos_update_request(&latency_request, cpu_latency_us);
	} else {
		cpu_latency_qos_add_request(&latency_request, cpu_latency_us);
	}
}

/*
 * A range-checked integer knob: the value is parsed into a copy, so a rejected write leaves the
 * knob untouched, then stored and applied under the lock.
 */
static int knob_handler(const struct ctl_table *table, int write, void *buffer, size_t *lenp,
			loff_t *ppos)
{
	struct ctl_table copy = *table;
	int value, ret;

	mutex_lock(&optimizer_lock);
	value = *(int *)table->data;
	copy.data = &value;
	ret = proc_dointvec_minmax(&copy, write, buffer, lenp, ppos);
	if (write && ret == 0) {
		*(int *)table->data = value;
		if (table->data == &cpu_latency_us)
			apply_cpu_latency();
		else
			mod_delayed_work(system_wq, &sampler, msecs_to_jiffies(sample_interval_ms));
	}
	mutex_unlock(&optimizer_lock);
	return ret;
}

/* A read-only text entry: "nodeN VALUE" per online node, from free memory now or the minimum. */
static int node_table_handler(const struct ctl_table *table, int write, void *buffer,
			      size_t *lenp, loff_t *ppos)
{
	struct ctl_table copy = *table;
	char *text;
	size_t used = 0;
	int nid, ret;

	if (write)
		return -EPERM;
	text = kzalloc(TEXT_SIZE, GFP_KERNEL);
	if (!text)
		return -ENOMEM;
	mutex_lock(&optimizer_lock);
	for_each_online_node(nid) {
		unsigned long value = table->data == node_free_min_kb ? node_free_min_kb[nid]
								     : node_free_kb(nid);

		used += scnprintf(text + used, TEXT_SIZE - used, "%snode%d %lu",
				  used ? "\n" : "", nid, value);
	}
	mutex_unlock(&optimizer_lock);
	copy.data = text;
	copy.maxlen = TEXT_SIZE;
	ret = proc_dostring(&copy, 0, buffer, lenp, ppos);
	kfree(text);
	return ret;
}

/* No empty terminating entry: 6.12 sizes tables with ARRAY_SIZE and rejects a NULL procname. */
static struct ctl_table optimizer_table[] = {
	{
		.procname = "cpu_latency_us",
		.data = &cpu_latency_us,
		.maxlen = sizeof(int),
		.mode = 0644,
		.proc_handler = knob_handler,
		.extra1 = SYSCTL_NEG_ONE,
		.extra2 = &cpu_latency_max,
	},
	{
		.procname = "sample_interval_ms",
		.data = &sample_interval_ms,
		.maxlen = sizeof(int),
		.mode = 0644,
		.proc_handler = knob_handler,
		.extra1 = &sample_interval_min,
		.extra2 = &sample_interval_max,
	},
	{
		.procname = "numa_nodes",
		.data = &numa_nodes,
		.maxlen = sizeof(int),
		.mode = 0444,
		.proc_handler = proc_dointvec,
	},
	{
		.procname = "node_free_kb",
		.data = NULL,
		.maxlen = TEXT_SIZE,
		.mode = 0444,
		.proc_handler = node_table_handler,
	},
	{
		.procname = "node_free_min_kb",
		.data = node_free_min_kb,
		.maxlen = TEXT_SIZE,
		.mode = 0444,
		.proc_handler = node_table_handler,
	},
	{
		.procname = "samples",
		.data = &samples,
		.maxlen = sizeof(samples),
		.mode = 0444,
		.proc_handler = proc_doulongvec_minmax,
	},
};

static int __init optimizer_init(void)
{
	numa_nodes = num_online_nodes();
	INIT_DELAYED_WORK(&sampler, sample);
	header = register_sysctl(OPTIMIZER_PATH, optimizer_table);
	if (!header)
		return -ENOMEM;
	schedule_delayed_work(&sampler, 0);
	pr_info("solana-optimizer: %d NUMA node(s), knobs in /proc/sys/" OPTIMIZER_PATH "\n",
		numa_nodes);
	return 0;
}

static void __exit optimizer_exit(void)
{
	unregister_sysctl_table(header);
	cancel_delayed_work_sync(&sampler);
	mutex_lock(&optimizer_lock);
	cpu_latency_us = -1;
	apply_cpu_latency();
	mutex_unlock(&optimizer_lock);
}

module_init(optimizer_init);
module_exit(optimizer_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kiln");
MODULE_DESCRIPTION("Runtime tuning knobs and NUMA memory status for Solana validators");
MODULE_VERSION("1.0");
