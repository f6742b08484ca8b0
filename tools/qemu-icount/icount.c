/*
 * icount: a QEMU TCG plugin (plugin API v1, QEMU 7.2+) that counts executed guest instructions.
 *
 * Counts
 *   total    every executed instruction;
 *   range    instructions whose address lies in [lo, hi)  (e.g. one function, from `nm -S`);
 *   window   instructions executed between reaching address `begin` and reaching address `end`
 *            (callees included), summed over all windows; `windows` = number of closed windows.
 *   profile  with profile=1: per translation block, its address, instruction count and
 *            executions (a block left early by an exception still counts whole), to map onto
 *            functions (`lightsnn-tools icount --profile`).
 * Arguments (all optional, hex with 0x or decimal): lo=, hi=, begin=, end=, profile=.
 * Prints at exit through qemu_plugin_outs (shown with `-d plugin`, `-D file` to redirect):
 *   icount total=N range=N window=N windows=N
 *   tb 0xADDR NINSNS EXECS        (one per translated block, with profile=1)
 * Build: gcc -O2 -shared -fPIC -o libicount.so icount.c   (no QEMU headers needed)
 * Use:   qemu-system-arm ... -plugin ./libicount.so,lo=0x..,hi=0x..,begin=0x..,end=0x.. -d plugin
 * Single vCPU guests only (the counters are not per-vCPU).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The few declarations of QEMU's qemu-plugin.h (API version 1) this plugin uses; Debian ships
 * QEMU with plugin support but without the header. */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t; /* only passed through */
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t lo, hi, begin_pc = UINT64_MAX, end_pc = UINT64_MAX;
static uint64_t total, in_range, window, windows, window_start;
static bool open_window, profile;
/* One record per translation (a block translated twice has two records; the reader sums). */
struct tb_rec { uint64_t vaddr, n, execs; struct tb_rec *next; };
static struct tb_rec *tbs;

/* Marker callbacks run before the marker instruction's inline count is added; both snapshots
 * are taken at the same point of an instruction, so the window is exact. */
static void on_begin(unsigned int vcpu, void *u) { (void)vcpu; (void)u; window_start = total; open_window = true; }
static void on_end(unsigned int vcpu, void *u)
{
    (void)vcpu; (void)u;
    if (open_window) { window += total - window_start; windows++; open_window = false; }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (profile) {
        struct tb_rec *r = calloc(1, sizeof *r);
        if (r) {
            r->vaddr = qemu_plugin_tb_vaddr(tb);
            r->n = n;
            r->next = tbs;
            tbs = r;
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &r->execs, 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc == begin_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc == end_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
        if (pc >= lo && pc < hi)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &in_range, 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *u)
{
    (void)id; (void)u;
    char line[160];
    snprintf(line, sizeof line, "icount total=%llu range=%llu window=%llu windows=%llu\n",
             (unsigned long long)total, (unsigned long long)in_range,
             (unsigned long long)window, (unsigned long long)windows);
    qemu_plugin_outs(line);
    for (struct tb_rec *r = tbs; r; r = r->next) {
        if (!r->execs) continue;
        snprintf(line, sizeof line, "tb 0x%llx %llu %llu\n", (unsigned long long)r->vaddr,
                 (unsigned long long)r->n, (unsigned long long)r->execs);
        qemu_plugin_outs(line);
    }
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) return -1;
        uint64_t v = strtoull(eq + 1, NULL, 0);
        size_t k = (size_t)(eq - argv[i]);
        if (k == 2 && !strncmp(argv[i], "lo", k)) lo = v;
        else if (k == 2 && !strncmp(argv[i], "hi", k)) hi = v;
        else if (k == 5 && !strncmp(argv[i], "begin", k)) begin_pc = v;
        else if (k == 3 && !strncmp(argv[i], "end", k)) end_pc = v;
        else if (k == 7 && !strncmp(argv[i], "profile", k)) profile = v != 0;
        else return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
