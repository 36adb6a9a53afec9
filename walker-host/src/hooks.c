/*
 * walker's executor and utility hook trampolines.
 *
 * Why C: these functions sit between the server and every other extension's hooks.
 * An ERROR raised by the server or by another extension below them must reach the
 * client untouched (SQLSTATE, position, context, schema/table/column/constraint
 * names...). Rust code in between would have to catch PostgreSQL's longjmp and
 * re-raise a reduced copy (pgrx's FFI guard does exactly that). Here the server's
 * error simply passes through these C frames, which own nothing; the nesting depth
 * is restored with PG_FINALLY and the error re-thrown as it was.
 *
 * The Rust side (hooks.rs) builds the backend events and asks the plugins. It is
 * called *before* or *after* the server's work, never around it, and returns; when a
 * plugin rejects the statement the Rust side fills a verdict and this file raises it
 * with ereport, so the plugin's SQLSTATE and fields reach the client as given.
 */
#include "postgres.h"

#include "executor/executor.h"
#include "miscadmin.h"
#include "tcop/utility.h"

/* What the Rust side answers at statement start. */
#define WALKER_HOOK_PROCEED 0
#define WALKER_HOOK_REJECT 1
#define WALKER_HOOK_INTERRUPTED 2

/*
 * A plugin's rejection, filled by the Rust side: the SQLSTATE as the server encodes
 * it (MAKE_SQLSTATE) and palloc'd NUL-terminated strings (detail and hint may be
 * NULL). Layout shared with hooks.rs (`HookVerdict`).
 */
typedef struct WalkerHookVerdict
{
	int			sqlerrcode;
	char	   *message;
	char	   *detail;
	char	   *hint;
} WalkerHookVerdict;

/* The Rust side (hooks.rs). None of them raises an ERROR through these frames
 * except walker's own (a bug), which pgrx reports as an internal error. */
extern int	walker_rs_executor_start(QueryDesc *queryDesc, int eflags, WalkerHookVerdict *verdict);
extern void walker_rs_executor_end(QueryDesc *queryDesc);
extern int	walker_rs_utility_start(PlannedStmt *pstmt, WalkerHookVerdict *verdict);
extern void walker_rs_utility_end(PlannedStmt *pstmt);

/* Nesting depth of executor runs and utility statements (0: the client's statement). */
int			walker_hook_depth = 0;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Raises the plugin's rejection, or processes the interrupt that ended its wait. */
static void
walker_settle(int answer, WalkerHookVerdict *v)
{
	if (answer == WALKER_HOOK_REJECT)
		ereport(ERROR,
				(errcode(v->sqlerrcode),
				 errmsg_internal("%s", v->message ? v->message : "statement refused by a walker plugin"),
				 v->detail ? errdetail_internal("%s", v->detail) : 0,
				 v->hint ? errhint("%s", v->hint) : 0));
	if (answer == WALKER_HOOK_INTERRUPTED)
		CHECK_FOR_INTERRUPTS();
}

static void
walker_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	WalkerHookVerdict v = {0};

	walker_settle(walker_rs_executor_start(queryDesc, eflags, &v), &v);
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

#if PG_VERSION_NUM >= 180000
static void
walker_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
{
	int			depth = walker_hook_depth++;

	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count);
		else
			standard_ExecutorRun(queryDesc, direction, count);
	}
	PG_FINALLY();
	{
		walker_hook_depth = depth;
	}
	PG_END_TRY();
}
#else
static void
walker_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				   bool execute_once)
{
	int			depth = walker_hook_depth++;

	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		walker_hook_depth = depth;
	}
	PG_END_TRY();
}
#endif

static void
walker_ExecutorFinish(QueryDesc *queryDesc)
{
	int			depth = walker_hook_depth++;

	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		walker_hook_depth = depth;
	}
	PG_END_TRY();
}

static void
walker_ExecutorEnd(QueryDesc *queryDesc)
{
	walker_rs_executor_end(queryDesc);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static void
walker_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	WalkerHookVerdict v = {0};
	int			depth;

	walker_settle(walker_rs_utility_start(pstmt, &v), &v);
	depth = walker_hook_depth++;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		walker_hook_depth = depth;
	}
	PG_END_TRY();
	walker_rs_utility_end(pstmt);
}

/* Installs the hooks, keeping the previous ones to chain to. In the postmaster. */
void
walker_hooks_install(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = walker_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = walker_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = walker_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = walker_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = walker_ProcessUtility;
}
