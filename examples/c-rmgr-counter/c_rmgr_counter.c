/*
 * c_rmgr_counter: an example walker plugin in C, to start a plugin of your own from.
 *
 * Counts WAL records and their bytes per resource manager and shows them in the view
 * walker.c_rmgr_counter_rmgrs (rmgr, records, bytes, since_lsn, through_lsn), the
 * numbers pg_walinspect's pg_get_wal_stats(since_lsn, through_lsn) gives (bytes =
 * record_size + fpi_size).
 *
 * It needs only walker_plugin.h (no PostgreSQL headers):
 *
 *     cc -shared -fPIC -O2 -Wall -I walker-abi/include -o c_rmgr_counter.so c_rmgr_counter.c
 *
 * then copy c_rmgr_counter.so into `pg_config --pkglibdir` and add c_rmgr_counter to
 * walker.plugins. Plugins are trusted code: they run inside the server with its
 * privileges.
 *
 * Where things run: init and shmem_* in the postmaster at server start;
 * on_records/on_record on the plugin's dispatch thread in the walker worker;
 * view_rows in whichever backend reads the view. State every process sees lives in
 * the shared-memory region the host gives the plugin, under the region's lock.
 */
#include <string.h>

#include "walker_plugin.h"

/* The shared state: one counter pair per resource manager id. */
typedef struct CounterState
{
    uint64_t since_lsn;   /* start of the first record counted */
    uint64_t through_lsn; /* end of the last record counted */
    uint64_t records[256];
    uint64_t bytes[256];
} CounterState;

/* Set in init, in the postmaster; every server process inherits it. */
static const WalkerHostApi *host = NULL;

static WalkerStatus fail(WalkerPlugin *plugin, const char *msg)
{
    host->set_error(plugin, (const uint8_t *) msg, strlen(msg));
    return WalkerStatus_ERROR;
}

static CounterState *state_of(WalkerPlugin *plugin)
{
    size_t size = 0;
    CounterState *state = host->shmem_region(plugin, &size);

    return size >= sizeof(CounterState) ? state : NULL;
}

static WalkerStatus counter_init(const WalkerHostApi *api, WalkerPlugin *plugin)
{
    host = api;
    /* on_records is ABI 1.5 (lock_timed 1.4): an older host would never call it. */
    if (api->abi_minor < 5 || api->struct_size < WALKER_HOST_API_V1_4_SIZE)
        return fail(plugin, "c_rmgr_counter needs a walker host of ABI 1.5 or later: upgrade walker");
    return WalkerStatus_OK;
}

static size_t counter_shmem_size(WalkerPlugin *plugin)
{
    (void) plugin;
    return sizeof(CounterState);
}

static WalkerStatus counter_shmem_init(WalkerPlugin *plugin, void *region, size_t size, bool found)
{
    (void) plugin;
    (void) size;
    if (!found)
        memset(region, 0, sizeof(CounterState));
    return WalkerStatus_OK;
}

/*
 * The fast pattern: the host hands a whole run of records (a batch) in one call,
 * and the plugin takes the cross-process lock once for the run, not once per record.
 * The lock rule: hold it only to copy into or out of the region (no I/O, no logging,
 * no waiting inside), and release it before returning.
 */
static WalkerStatus counter_on_records(WalkerPlugin *plugin, const WalkerRecord *records, uint32_t n, uint32_t *failed_at)
{
    CounterState *state = state_of(plugin);
    WalkerStatus st;

    *failed_at = 0; /* a failure here concerns the run's first record */
    if (state == NULL)
        return fail(plugin, "c_rmgr_counter: no shared-memory region");
    st = host->lock_timed(plugin, true, UINT32_MAX);
    if (st != WalkerStatus_OK)
        return st; /* BUSY or INTERRUPTED: the lock is not held; the host reports it */
    for (uint32_t i = 0; i < n; i++)
    {
        const WalkerRecord *r = &records[i];

        if (state->since_lsn == 0)
            state->since_lsn = r->lsn;
        state->through_lsn = r->end_lsn;
        state->records[r->rmid] += 1;
        state->bytes[r->rmid] += r->total_len;
    }
    host->unlock_exclusive(plugin);
    return WalkerStatus_OK;
}

/* One row per resource manager seen: copy the counters under the lock, emit after. */
static WalkerStatus counter_view_rows(WalkerPlugin *plugin, uint32_t view, const WalkerRowSink *sink)
{
    CounterState *state = state_of(plugin);
    static CounterState copy; /* 4 KiB: not on the stack; one view call at a time per process */
    WalkerStatus st;

    (void) view; /* one view only */
    if (state == NULL)
        return fail(plugin, "c_rmgr_counter: no shared-memory region");
    st = host->lock_timed(plugin, false, UINT32_MAX);
    if (st != WalkerStatus_OK)
        return st;
    copy = *state;
    host->unlock_shared(plugin);

    for (int rmid = 0; rmid < 256; rmid++)
    {
        uint8_t name[64];
        size_t name_len = 0;
        WalkerValue v[5];

        if (copy.records[rmid] == 0)
            continue;
        if (host->rmgr_name((uint8_t) rmid, name, sizeof(name), &name_len) != WalkerStatus_OK)
            name_len = 0;
        memset(v, 0, sizeof(v));
        v[0].ty = WalkerType_TEXT;
        v[0].str_ptr = name;
        v[0].str_len = name_len;
        v[1].ty = WalkerType_INT8;
        v[1].int_value = (int64_t) copy.records[rmid];
        v[2].ty = WalkerType_INT8;
        v[2].int_value = (int64_t) copy.bytes[rmid];
        v[3].ty = WalkerType_LSN;
        v[3].lsn_value = copy.since_lsn;
        v[4].ty = WalkerType_LSN;
        v[4].lsn_value = copy.through_lsn;
        st = sink->emit(sink->ctx, v, 5);
        if (st != WalkerStatus_OK)
            return st;
    }
    return WalkerStatus_OK;
}

static const WalkerColumn columns[] = {
    {.name = "rmgr", .ty = WalkerType_TEXT},
    {.name = "records", .ty = WalkerType_INT8},
    {.name = "bytes", .ty = WalkerType_INT8},
    {.name = "since_lsn", .ty = WalkerType_LSN},
    {.name = "through_lsn", .ty = WalkerType_LSN},
};

static const WalkerView views[] = {
    {
        .name = "rmgrs",
        .description = "WAL records and bytes per resource manager (C example)",
        .columns = columns,
        .n_columns = sizeof(columns) / sizeof(columns[0]),
    },
};

/* What the host reads first: ABI version and size, then what the plugin offers. */
static const WalkerPluginDescriptor descriptor = {
    .abi_major = WALKER_ABI_MAJOR,
    .abi_minor = WALKER_ABI_MINOR,
    .struct_size = sizeof(WalkerPluginDescriptor),
    .version = "1.0.0",
    .description = "example: WAL records and bytes per resource manager, in C",
    .rmgr_mask = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}, /* every rmgr */
    .views = views,
    .n_views = sizeof(views) / sizeof(views[0]),
    .init = counter_init,
    .shmem_size = counter_shmem_size,
    .shmem_init = counter_shmem_init,
    .on_records = counter_on_records,
    .view_rows = counter_view_rows,
};

const WalkerPluginDescriptor *walker_plugin_entry(void)
{
    return &descriptor;
}
