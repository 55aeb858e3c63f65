/*
 * StepFlow's coordination protocol, for Spin (docs/reliability.md; `make model-check`).
 *
 * One execution of a two-state workflow:  Work (an activity Task) -> Pause (a Wait).
 * The parts that run concurrently, each a proctype:
 *   Api       StartExecution, StopExecution, RedriveExecution; also the activity API the
 *             workers call (SendTaskSuccess, SendTaskHeartbeat, GetActivityTask)
 *   Stepper   two instances over the transition queue (timers, repair messages)
 *   Worker    two activity workers: hand-out claim, heartbeat, complete, crash
 *   Runner    with -DRUNNER: the Work task is a Lambda task on the tasks queue instead,
 *             run by two task runners (runtime/runner_commit.py): claim its lease, invoke,
 *             then EITHER commit the result themselves (the direct commit, issue 18) OR
 *             the fallback: record it on the lease and send it to the transition queue
 *   GroupRunner with -DRUNNER -DGROUP: Work is a Parallel of two Lambda tasks (tasks 1 and 2
 *             of one commit), sent as ONE group message and claimed with ONE group lease
 *             (runtime/runner_group.py): the open tasks run side by side, their results
 *             are committed in rounds (together or one by one), each round directly or
 *             through the fallback (recorded on the group lease, sent as result messages)
 *   HOLD      with -DRUNNER -DHOLD (issue 18 rounds 4-5): Work is two Lambda tasks in sequence,
 *             Work1 -> Work2 (tasks 1 and 2: cur names the open one; no redrive). The runner
 *             that commits Work1's result may mark the head "held until" in that same write
 *             (runtime/held_mark.py mark; the mark is live until World lets it pass, at any
 *             moment) and hold Work2 (runtime/in_place.py): not sent, the outbox not cleared
 *             (its only durable copy); it then runs Work2 itself through Work2's lease record,
 *             as a delivered task (in_place.run_rounds), or sends it when out of time. While
 *             the mark is live no delivery re-sends the outbox (a repair message, the repair
 *             job, a redelivery: stepper_commit._commit's on_hold); an event of another branch
 *             commits beside Work2 and carries the held task in its outbox under the same mark
 *             (held_mark.carry_held, never a later mark). Work1 itself runs plainly (PLAIN1:
 *             the runner scenario checks its lease, crash and fallback).
 *   RepairJob the outbox repair job
 *   World     time (timers fall due, leases run out) and the queues' faults
 * Every step names, in a comment, the runtime function it mirrors.
 *
 * Abstractions (each over-approximates the runtime, so the safety results carry over):
 *   - The transition queue is a bag (a counter per message): any message can be
 *     delivered next (reordering); the World copies one (duplicates); a delivery that
 *     is not acknowledged comes back (crash).  A third copy of a message merges with
 *     the two in flight (a copy adds no behaviour the duplicate does not).
 *   - A message the queue accepted is not lost (SQS is durable); a lost send is a
 *     sender that crashes before or while sending, which any step may do.  A repair
 *     message may arrive before the commit it guards (then it does nothing: lost).
 *   - A timer message may be delivered before it is due (early delivery).
 *   - A worker may receive the activity message at any moment, as often as it likes
 *     (SQS may hand one message to two pollers, or early); a lease may run out at
 *     any moment (a slow worker); a heartbeat renews it.
 *   - The load of a head and the engine's decision on it are one step (decide is a
 *     pure function of the loaded record); the commit is another.
 *   - HOLD: the mark is a flag (its time: live, or passed for good); sends do not fail
 *     with an error (a lost send is a crash), so OutboxSender._end_mark, keep_outbox and
 *     InPlace's rounds beyond one held task are left to the tests.
 *
 * Properties: the assertions (no task result, ActivityStarted or timer applied twice;
 * with RUNNER: a task invoked again only after a lease of it ran out (GROUP: the group's);
 * only the current lease holder's result is committed; SUCCEEDED only once every
 * transition was applied) and the LTL claim `ends`: every execution ends under weak
 * fairness (nothing is left RUNNING, so no transition is lost).
 * -DMUT_NOSEQ, -DMUT_NOFENCE, -DMUT_NOOUTBOX, -DMUT_NOGROUPLEASE (a group claimed while
 * another runner holds its lease), -DMUT_NOCOVER (a group's member started without
 * checking the group lease still covers it: review 3's finding 3) switch on the mutants
 * that must fail; with HOLD, -DMUT_DROPHELD (a commit on a held head drops the held task)
 * and -DMUT_PUSHMARK (it writes a later mark of its own: abstracted as a mark that then
 * never passes, the unbounded chain of runners that each hold tasks of their own), and
 * -DMUT_HOLDNOLEASE (the holder runs Work2 without claiming its lease record).
 */

#define MAXRUN   2   /* run 1, and run 2 after a redrive: attempt id = timer id = run */
#define MAXDEL   2   /* activities/tasks.py TaskService.max_deliveries */
#ifndef CRASHES
#define CRASHES  1   /* crashes of steppers, API and workers, in all (each at any step) */
#endif
#ifndef DUPS
#define DUPS     1   /* duplicated deliveries */
#endif
#ifndef STEPPERS
#define STEPPERS 2   /* stepper instances racing on the transition queue */
#endif
#ifndef WORKERS
#define WORKERS  2   /* activity workers racing for the task */
#endif
#ifndef STOP
#define STOP     1   /* StopExecution and RedriveExecution are called */
#endif
#ifndef BEATS
#define BEATS    1   /* heartbeats per worker */
#endif
#ifndef RUNNER
#define RUNNER   0   /* the Work task is a Lambda task run by task runners (Runner) */
#endif
#ifndef RUNNERS
#define RUNNERS  2   /* task runners racing on the tasks queue (with RUNNER) */
#endif
#ifndef GROUP
#define GROUP    0   /* with RUNNER: Work is a Parallel of two tasks, one group message (GroupRunner) */
#endif
#ifndef HOLD
#define HOLD     0   /* with RUNNER: Work is Work1 -> Work2; Work2 may be held in place (Runner) */
#endif
#ifndef PLAIN1
#define PLAIN1   HOLD   /* HOLD: Work1 runs plainly (its lease does not run out, no crash or
                           fallback before its commit: the runner scenario checks those) */
#endif
#if PLAIN1
#define may_crash(t) crashes > 0 && t != 1   /* a runner may die after invoking task t */
#define may_fall(t)  t != 1                   /* a runner may fall back with task t's result */
#else
#define may_crash(t) crashes > 0
#define may_fall(t)  true
#endif
#ifndef SIBLING
#define SIBLING  1      /* HOLD: another branch's event commits beside Work2 (0: none) */
#endif
#if HOLD && (!RUNNER || GROUP || STOP)
#error "HOLD needs RUNNER, no GROUP and STOP=0 (task 2 is Work2, not a redrive's attempt)"
#endif

/* head status (runtime/ports.py ExecutionRecord.status) */
#define RUNNING   0
#define SUCCEEDED 1
#define ABORTED   2
#define FAILED    3

/* where the root thread is (the engine state in the head) */
#define AT_WORK   0  /* the activity task of this run is open */
#define AT_PAUSE  1  /* the Wait's timer of this run is armed */
#define AT_END    2

/* outbox bits (runtime/outbox.py build_outbox) */
#define OB_TASK  1   /* RunTask: dispatched to the activity queue (TaskRouter.dispatch) */
#define OB_TIMER 2   /* StartTimer: a delayed TimerFired message on the transition queue */

/* ---- the coordination log: the execution head (runtime/memory.py InMemoryLog) ---- */
bool created;
byte seq;
byte status;
byte pos;
byte cur;          /* the run: redrive count + 1 */
bool started;      /* ActivityStarted recorded for this run's attempt */
byte outbox;

/* ---- the task's lease record, per attempt (runtime/leases.py TaskLease) ---- */
byte lver[MAXRUN + 1];
byte ldel[MAXRUN + 1];     /* delivery */
byte lown[MAXRUN + 1];     /* owner: the worker's number, 0 none */
bool llive[MAXRUN + 1];    /* TaskLease.live: until > now, not released, no result */
byte lexp[MAXRUN + 1];     /* expired hand-outs */
bool lres[MAXRUN + 1];     /* TaskLease.result recorded (a queued task's, RUNNER) */
byte lost[MAXRUN + 1];     /* leases that ran out while live */

/* ---- GROUP: the two tasks of one commit, and their one group lease (runner_group.py) ---- */
bool topen[3];             /* the head: task t's attempt is open (the Parallel's branch t) */
byte gwriter;              /* the runner that last wrote the group lease (its claim is "ours"
                              while no other wrote it since: the version check, bounded) */
bool glive;                /* held: until > now, not released */
bool gres[3];              /* task t's result recorded on the group lease (the fallback) */
bool gcom[3];              /* task t marked done on the group lease (by a later fallback) */
bool granlive[3];          /* task t invoked under a group lease that has not run out since */
byte gq;                   /* the group message on the tasks queue */
#ifndef DEFERS
#define DEFERS   0   /* GROUP: members that ask to run later (TaskDeferredError), in all */
#endif
byte defers = DEFERS;
#ifndef STARTS_APART
#define STARTS_APART 1   /* GROUP: each member's start is its own step (0: both in one step) */
#endif
#ifndef SLOWSTARTS
#define SLOWSTARTS 1     /* GROUP: group leases that may run out between a claim and its starts */
#endif
byte gslow = SLOWSTARTS;
bool gpending;             /* the group lease's holder has claimed, not yet started its members */
byte dq[3];                /* a handed-off member's own (single) task message on the tasks queue */

/* ---- HOLD: the "held until" mark on the head (runtime/held_mark.py) ----
 * Work1 and Work2 use the attempt index: task 1 is Work1, task 2 is Work2 (no redrive: STOP=0),
 * and cur names the open one (after Work2, the Wait's timer is TimerFired(2)). */
#if HOLD
bool marked;       /* held_mark.held: the head's mark, written by its commit, still ahead */
#define pending(ob) ob != 0 && !marked   /* an outbox to re-send: not while marked */
byte sq;           /* the other branch's event on the transition queue (see Stepper) */
#ifdef MUT_PUSHMARK
bool pushed;       /* a carrying commit pushed the mark later (the mutant) */
#endif
#else
#define pending(ob) ob != 0
#endif

/* ---- queues ---- */
byte tq[MAXRUN + 1];       /* TimerFired(run) messages on the transition queue */
byte rq;                   /* repair messages on the transition queue */
byte aq[MAXRUN + 1];       /* task messages on the activity queue (RUNNER: the tasks queue) */
byte resq[MAXRUN + 1];     /* RUNNER: task result messages on the transition queue */

/* ---- faults left ---- */
byte crashes = CRASHES;
byte dups = DUPS;
#if GROUP || HOLD
byte early = 0;    /* (the other scenarios deliver a timer early) */
#else
byte early = 1;
#endif

/* ---- what happened (checked) ---- */
byte started_ev[MAXRUN + 1];   /* ActivityStarted events per attempt */
byte result_ev[MAXRUN + 1];    /* task results (succeeded or failed) committed per attempt */
byte fired_ev[MAXRUN + 1];     /* TimerFired applied per run */
byte passed;                   /* the attempt whose success left the Work state */
byte invoked[MAXRUN + 1];      /* RUNNER: invocations of the task per attempt */

#if RUNNER
#define started_ok(a) true       /* a Lambda task records no ActivityStarted */
#else
#define started_ok(a) (started_ev[a] == 1)
#endif

#define put(c)      if :: c < 2 -> c++ :: else -> skip fi
#define take(c)     if :: c > 0 -> c-- :: else -> skip fi

#define terminal    (status != RUNNING)
#if GROUP
#define task_open(a) (status == RUNNING && pos == AT_WORK && topen[a])
#else
#define task_open(a) (status == RUNNING && cur == a && pos == AT_WORK)
#endif

/* The commit's condition on seq (runtime/memory.py InMemoryLog.commit); the mutant drops it */
#ifndef MUT_NOSEQ
#define on_seq(s)   (seq == s)
#else
#define on_seq(s)   true
#endif

/* runtime/repair.py OutboxSender.flush: send every message of the outbox, in one step */
#if GROUP
#define send_task(r) put(gq)   /* the commit's tasks: one group message (OutboxSender.flush) */
#else
#define send_task(r) put(aq[r])
#endif
#define send_outbox(ob, r) \
    if :: (ob) & OB_TASK -> send_task(r) :: else -> skip fi; \
    if :: (ob) & OB_TIMER -> put(tq[r]) :: else -> skip fi

/* runtime/memory.py InMemoryLog.clear_outbox: only if the head is still at seq s */
#define clear_outbox(s) if :: seq == s -> outbox = 0 :: else -> skip fi

/*
 * runtime/stepper.py Stepper._commit, before it decides: re-send the loaded record's
 * pending outbox (a crashed writer's) with OutboxSender.flush and clear it
 * (InMemoryLog.clear_outbox, conditional on seq).  One step with the load: what runs
 * between them changes nothing (the clear is conditional; a re-sent message is a
 * duplicate).  The sender may die before the send (a lost send) or before the clear.
 * HOLD: not while the head's mark is live (stepper_commit._commit's on_hold).
 */
#define repair_outbox(ls, lob, lrun, crashed) \
    if \
    :: pending(lob) && crashes > 0 -> crashes--; crashed = true \
    :: pending(lob) && crashes > 0 -> crashes--; crashed = true; send_outbox(lob, lrun) \
    :: pending(lob) -> send_outbox(lob, lrun); clear_outbox(ls) \
    :: else -> skip \
    fi

/* runtime/repair.py OutboxSender.send_repair: a delayed repair message before a commit
 * that has messages to send (the API's stepper, repair_delay > 0) */
#define send_repair() atomic { put(rq) }

/* ------------------------------------------------------------------------------------ */

/* api/executions.py -> runtime/stepper.py Stepper.start_execution, stop_execution,
 * redrive_execution (each Stepper._apply -> Stepper._commit, retried on a conflict) */
active proctype Api()
{
    byte ls, lob, lrun;
    bool crashed = false, go;

    /* Stepper.start_execution: repair message, InMemoryLog.create, then _flush */
    send_repair();
    if
    :: atomic { crashes > 0 -> crashes-- }; goto gone   /* died before the create: no execution */
    :: true -> skip
    fi;
    atomic {   /* InMemoryLog.create: Start decided, the RunTask in the outbox */
        created = true; seq = 1; status = RUNNING; pos = AT_WORK; cur = 1; outbox = OB_TASK;
        topen[1] = GROUP; topen[2] = GROUP;
#if HOLD
        sq = SIBLING   /* the other branch's event, delivered at any moment (see Stepper) */
#endif
    }
    if
    :: atomic { crashes > 0 -> crashes-- }; goto gone   /* the StartExecution send is lost */
    :: true -> skip
    fi;
    atomic { send_outbox(OB_TASK, 1); clear_outbox(1) };  /* OutboxSender.flush */

    if
    :: true -> goto gone                 /* nobody stops it */
#if STOP
    :: true -> skip
#endif
    fi;
stop:
    /* Stepper.stop_execution: Stepper._commit loads the head and decides Stop */
    atomic {
        ls = seq; lob = outbox; lrun = cur; go = (status == RUNNING);
        repair_outbox(ls, lob, lrun, crashed)
    };
    if :: crashed -> goto gone :: else -> skip fi;
    if
    :: go ->
        atomic {   /* InMemoryLog.commit */
            if
            :: on_seq(ls) -> seq++; status = ABORTED; outbox = 0
            :: else -> goto stop              /* ConflictError: reload, decide again */
            fi
        }
    :: else -> skip                           /* no effect on a finished execution */
    fi;
    if
    :: true -> goto gone                       /* nobody redrives it */
    :: true -> skip
    fi;
redrive:
    /* Stepper.redrive_execution; engine Decider.redrive: the state it stopped in runs
     * again (a new task attempt, or a new timer) */
    atomic {
        ls = seq; lob = outbox; lrun = cur;
        go = (status == ABORTED || status == FAILED);
        repair_outbox(ls, lob, lrun, crashed)
    };
    if :: crashed -> goto gone :: else -> skip fi;
    if
    :: go ->
        send_repair();
        atomic {   /* InMemoryLog.commit */
            if
            :: on_seq(ls) ->
                seq++; status = RUNNING; cur = lrun + 1; started = false;
                outbox = (pos == AT_WORK -> OB_TASK : OB_TIMER);
                lob = outbox; ls = seq
            :: else -> goto redrive
            fi
        };
        if
        :: atomic { crashes > 0 -> crashes-- }; goto gone     /* the redrive's send is lost */
        :: true -> skip
        fi;
        atomic { send_outbox(lob, lrun + 1); clear_outbox(ls) }   /* OutboxSender.flush */
    :: else -> skip                             /* ExecutionNotRedrivable */
    fi;
gone:
    skip
}

/* the stepper Lambda -> runtime/stepper.py Stepper.handle_batch (transition queue) */
proctype Stepper()
{
    byte id, res, ls, lob, lrun;
    bool crashed, repair, go;
#if HOLD
    bool sib, hold;   /* the other branch's event; the loaded head was held (on_hold) */
#define HOLD_RESET    ; sib = false; hold = false
#else
#define HOLD_RESET
#endif

end_idle:
    atomic { id = 0; res = 0; ls = 0; lob = 0; lrun = 0; crashed = false; repair = false; go = false
             HOLD_RESET };
end_wait:
    if
    :: atomic { tq[1] > 0 -> tq[1]--; id = 1 }
    :: atomic { tq[2] > 0 -> tq[2]--; id = 2 }
    :: atomic { rq > 0 -> rq--; repair = true }
    :: atomic { resq[1] > 0 -> resq[1]--; res = 1 }   /* a runner's fallback (RUNNER) */
    :: atomic { resq[2] > 0 -> resq[2]--; res = 2 }
#if HOLD
    /* an event of another branch of the execution (a Parallel sibling's result, a callback):
     * its commit leaves Work1/Work2 as they are (the commit on a held head: carry_held) */
    :: atomic { sq > 0 -> sq--; sib = true }
#endif
    fi;
    if
    :: atomic { id > 0 && early > 0 -> early-- } ->
        /* delivered before it is due: Stepper.handle_batch, not_before > now ->
         * bus.send(message, delay), then the ack */
        atomic { put(tq[id]) };
        goto end_idle
    :: true -> skip
    fi;
retry:
    /* Stepper._apply -> Stepper._commit: load the head; engine decide(TimerFired or the
     * task's result: the engine ignores a result of an attempt that is no longer open) */
    atomic {
        ls = seq; lob = outbox; lrun = cur;
        go = (id > 0 && status == RUNNING && pos == AT_PAUSE && cur == id) || (res > 0 && task_open(res));
#if HOLD
        go = go || (sib && task_open(2));   /* beside Work2 (earlier: stale, dropped) */
        hold = marked;   /* held_mark.held(record, now): nothing of the outbox is re-sent */
#endif
        repair_outbox(ls, lob, lrun, crashed)
    };
    if
    :: crashed -> goto redeliver
    :: !go -> goto end_idle      /* a repair message, a finished execution, a stale timer
                                    or result: acknowledged without effect */
    :: else -> skip
    fi;
    if
    :: atomic { crashes > 0 -> crashes-- }; goto redeliver     /* crash between decide and commit */
    :: true -> skip
    fi;
    atomic {   /* InMemoryLog.commit */
        if
        :: on_seq(ls) && id > 0 ->   /* TimerFired -> the execution succeeds */
            seq++; status = SUCCEEDED; pos = AT_END; outbox = 0;
            fired_ev[id]++;
            assert(fired_ev[id] == 1);                        /* no transition twice */
            assert(passed > 0 && result_ev[passed] == 1 && started_ok(passed)); /* none lost */
            assert(!GROUP || (result_ev[1] == 1 && result_ev[2] == 1))
#if HOLD
            ; assert(result_ev[1] == 1)                        /* Work1's too */
#endif
#if GROUP
        :: on_seq(ls) && res > 0 ->  /* a branch's result; both in -> the Wait: its timer */
            seq++; topen[res] = false; ls = seq;
            if
            :: !topen[1] && !topen[2] -> pos = AT_PAUSE; passed = res; outbox = OB_TIMER
            :: else -> outbox = 0
            fi;
            lob = outbox;
            result_ev[res]++;
            assert(result_ev[res] == 1)                        /* no task result twice */
#elif HOLD
        :: on_seq(ls) && res > 0 ->  /* Work1's result -> Work2's task; Work2's -> the Wait's timer */
            seq++; ls = seq;
            if
            :: res == 1 -> cur = 2; outbox = OB_TASK
            :: else -> pos = AT_PAUSE; passed = res; outbox = OB_TIMER
            fi;
            marked = false;   /* held_mark.mark: it carries nothing (Work2 closed), holds nothing */
            lob = outbox; lrun = cur;
            result_ev[res]++;
            assert(result_ev[res] == 1)                        /* no task result twice */
        :: on_seq(ls) && sib ->      /* the other branch's event: Work2 still open */
            seq++;
            if
#ifndef MUT_DROPHELD
            :: hold && (lob & OB_TASK) && task_open(2) ->
                /* held_mark.carry_held: Work2's held task stays in the outbox (its durable
                 * copy), under the same mark (held_mark.mark: the kept one, never later);
                 * OutboxSender.flush(skip=carried) sends nothing of it */
                outbox = OB_TASK;
#ifdef MUT_PUSHMARK
                marked = true; pushed = true   /* the mutant: its own mark, later */
#else
                skip
#endif
#endif
            :: else -> outbox = 0; marked = false   /* not held: re-sent at the load, cleared */
            fi;
            goto end_idle                  /* no message of its own to send: the ack */
#else
        :: on_seq(ls) && res > 0 ->  /* the task's result -> the Wait: its timer */
            seq++; pos = AT_PAUSE; passed = res; outbox = OB_TIMER; ls = seq;
            result_ev[res]++;
            assert(result_ev[res] == 1)                        /* no task result twice */
#endif
        :: else -> goto retry                        /* ConflictError: reload, decide again */
        fi
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto redeliver     /* crash after the commit, before the send */
#if GROUP
    :: res > 0 -> atomic { send_outbox(lob, 1); clear_outbox(ls) }; goto end_idle
#elif HOLD
    :: res > 0 -> atomic { send_outbox(lob, lrun); clear_outbox(ls) }; goto end_idle
#else
    :: res > 0 -> atomic { send_outbox(OB_TIMER, res); clear_outbox(ls) }; goto end_idle
#endif
    :: else -> goto end_idle                    /* the timer's outbox is empty: ack */
    fi;
redeliver:
    /* not acknowledged: the queue delivers it again after its visibility timeout */
    atomic {
        if
        :: repair -> put(rq)
        :: res > 0 -> put(resq[res])
#if HOLD
        :: sib -> put(sq)
#endif
        :: else -> put(tq[id])
        fi
    };
    goto end_idle
}

/* the runner Lambda (RUNNER) -> runtime/runner_commit.py run_tasks: one queued Lambda task.
 * The message stays on the tasks queue until acknowledged (take); any runner may receive
 * it at any moment, as often as it likes (duplicates, redeliveries, a crashed runner's). */
proctype Runner(byte me)
{
    byte a, ls, v;
    bool go;
#if HOLD
    byte m;       /* the delivered message (acknowledged last); a = 2 while Work2 runs in place */
    bool mine;    /* this runner's commit of Work1 marked the head: it holds Work2 */
#define msg       m
#define RUN_RESET ; m = 0; mine = false
#else
#define msg       a
#define RUN_RESET
#endif

end_idle:
    atomic { a = 0; ls = 0; v = 0; go = false RUN_RESET };
end_wait:
    if
    :: aq[1] > 0 -> a = 1
    :: aq[2] > 0 -> a = 2
    fi;
#if HOLD
    m = a;
check:
#endif
    /* TaskRuns.run_unrecorded: the head check before the claim */
    atomic {
        if
        :: !task_open(a) ->
            /* closed (its result committed, or cancelled): ResultGroups._closed re-sends a pending
             * outbox (a runner died after its commit, before sending), then the ack; HOLD: not
             * while the head is marked (apply_events -> stepper_commit._commit's on_hold) */
            if
            :: pending(outbox) -> send_outbox(outbox, cur); clear_outbox(seq)
            :: else -> skip
            fi;
            take(aq[msg]); goto end_idle
        :: else -> skip
        fi
    };
    /* leases.claim: done (a recorded result), busy (a live lease) or acquired */
    atomic {
        if
        :: lres[a] -> goto recorded
#if HOLD
        :: !lres[a] && llive[a] && a != m ->
            /* in_place.run_rounds: a held task that fails to run (TaskLeaseHeldError) is sent to
             * the tasks queue (in_place._send); the delivered message is acknowledged */
            put(aq[a]); goto ack
        :: !lres[a] && llive[a] && a == m -> goto end_idle   /* TaskLeaseHeldError: delivered again later */
#else
        :: !lres[a] && llive[a] -> goto end_idle   /* TaskLeaseHeldError: delivered again later */
#endif
        :: else -> lver[a]++; lown[a] = me; llive[a] = true; v = lver[a]
        fi
    };
    /* TaskRuns.invoke: the task runs (again only if a lease of it ran out) */
#ifdef MUT_HOLDNOLEASE
invoke:
#endif
    atomic { invoked[a]++; assert(invoked[a] <= 1 + lost[a]) };
    if
    :: atomic { may_crash(a) -> crashes-- }; goto end_idle   /* dies: the lease stays live till it runs out */
    :: true -> goto direct
    :: may_fall(a) -> goto fallback   /* the invocation is out of time, or the table fails */
    fi;
direct:
    /* ResultGroups._commit: only while its own lease has not run out */
    if
    :: atomic { !(llive[a] && lver[a] == v) } -> goto fallback
    :: else -> skip
    fi;
load:
    /* apply_events -> _commit: load the head, decide the result (ignored if not open) */
    atomic { ls = seq; go = task_open(a) };
    if
    :: !go -> goto ack                 /* the attempt closed meanwhile: nothing to commit */
    :: else -> skip
    fi;
    atomic {   /* InMemoryLog.commit, conditional on seq; a conflict reloads, or gives up */
        if
        :: on_seq(ls) ->
#if HOLD
            seq++; ls = seq;
            if
            :: a == 1 ->   /* Work1's result -> Work2's task in the outbox */
                cur = 2; outbox = OB_TASK;
                if
                :: marked = true; mine = true   /* held_mark.mark (InPlace.deadline): in this write */
                :: true -> skip   /* too little time left to hold: no mark, sent */
                fi
                /* (a runner without a deadline, a context with no clock, holds without a
                 * mark: the same states as a mark that passes at once) */
            :: else ->     /* Work2's: the Wait's timer; the mark ends (nothing carried, nothing held) */
                pos = AT_PAUSE; passed = a; outbox = OB_TIMER; marked = false
            fi;
#else
            seq++; pos = AT_PAUSE; passed = a; outbox = OB_TIMER; ls = seq;
#endif
            result_ev[a]++;
            assert(result_ev[a] == 1)             /* no task result committed twice */
        :: !on_seq(ls) -> goto load
        :: !on_seq(ls) -> goto fallback           /* conflicts exhausted */
        fi
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the send, unacknowledged */
#if HOLD
    :: mine -> goto held                   /* OutboxSender._flush: InPlace.hold, nothing sent */
    :: !mine -> atomic { send_outbox((a == 1 -> OB_TASK : OB_TIMER), 2); clear_outbox(ls) }
#else
    :: true -> atomic { send_outbox(OB_TIMER, a); clear_outbox(ls) }
#endif
    fi;
    goto ack;
#if HOLD
held:
    /* in_place.run_rounds: the next round runs the held Work2 as if delivered (the outbox,
     * not cleared, is its only durable copy); or, out of time (InPlace.hold refused after all,
     * or has_time() fails before the round), in_place._send sends it and clear_outbox(seq_of)
     * clears the outbox if the head is still at that commit. The mark stays until it passes. */
    mine = false;
    if
    :: atomic { put(aq[2]); clear_outbox(ls) }; goto ack
#ifndef MUT_HOLDNOLEASE
    :: true -> a = 2; goto check
#else
    :: true -> a = 2; goto invoke   /* the mutant: the held task runs without claiming its lease */
#endif
    fi;
#endif
fallback:
    /* ResultGroups._fall_back: TaskRuns.record (leases.finish: only if still ours), send_result */
    atomic {
        if
        :: lver[a] == v -> lver[a]++; lres[a] = true; llive[a] = false
        :: else -> skip                          /* the lease moved on: its holder records */
        fi
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the send */
    :: true -> skip
    fi;
recorded:
    atomic { put(resq[a]) };                     /* the result message (a duplicate's: again) */
ack:
    atomic { take(aq[msg]) };   /* HOLD: after the rounds in place (the Lambda's batch response) */
    goto end_idle
}

/* ResultGroups._run_member: member t (to start: it) starts only while GroupClaim.covers it: the
 * lease still this claim's and live (the runtime asks for its TimeoutSeconds and a margin
 * left, so that it ends before the lease can run out; the model's lease may still run out
 * at any moment after: the same states as a slow task); else not started (st), left for
 * the redelivery. Or it asks to run later (ht: TaskDeferredError, DEFERS in all). */
#ifndef MUT_NOCOVER
#define start_member(t, it, rt, st, ht) \
    if \
    :: it && glive && gwriter == me -> assert(!granlive[t]); granlive[t] = true; rt = true \
    :: it && glive && gwriter == me && defers > 0 -> defers--; ht = true \
    :: it && !(glive && gwriter == me) -> st = true \
    :: else -> skip \
    fi; \
    it = false
#else
#define start_member(t, it, rt, st, ht) \
    if \
    :: it -> assert(!granlive[t]); granlive[t] = true; rt = true \
    :: else -> skip \
    fi; \
    it = false
#endif

/* the runner Lambda with GROUP -> runtime/runner_group.py: the group message of one commit's
 * two tasks. It stays on the tasks queue until acknowledged; any runner may receive it at
 * any moment, as often as it likes (duplicates, redeliveries, a crashed runner's). */
proctype GroupRunner(byte me)
{
    byte v, ls, lob;
    bool o1, o2;     /* open in the head when the runner looked */
    bool r1, r2;     /* ran under this claim, result neither committed nor recorded yet */
    bool c1, c2;     /* this round's results */
    bool d1, d2;     /* ended under this claim: committed, or found closed when committing */
    bool i1, i2;     /* to start under this claim (the claim and each start are steps) */
    bool s1, s2;     /* not started: the lease no longer covered it (left for the redelivery) */
    bool h1, h2;     /* deferred (TaskDeferredError): to hand off as its own message */
    bool go;

end_idle:
    atomic { v = 0; ls = 0; lob = 0; o1 = false; o2 = false; r1 = false; r2 = false;
             c1 = false; c2 = false; d1 = false; d2 = false; i1 = false; i2 = false;
             s1 = false; s2 = false; h1 = false; h2 = false; go = false };
end_wait:
    if
    :: gq > 0 -> skip
    :: atomic { dq[1] > 0 || dq[2] > 0 ->
        /* a handed-off member's own message (TaskRuns under its own TK#<task> lease, the
         * path of the runner scenario): run if open, its result to the transition queue */
        if
        :: dq[1] > 0 -> dq[1]--; if :: task_open(1) -> put(resq[1]) :: else -> skip fi
        :: dq[2] > 0 -> dq[2]--; if :: task_open(2) -> put(resq[2]) :: else -> skip fi
        fi };
        goto end_idle
    fi;
    /* GroupRun.open_members: one head read; closed members are dropped */
    atomic {
        o1 = task_open(1); o2 = task_open(2);
        if
        :: !o1 && !o2 ->
            /* all closed: re-send a pending outbox (a runner died after its commit), ack */
            if
            :: outbox != 0 -> send_outbox(outbox, cur); clear_outbox(seq)
            :: else -> skip
            fi;
            take(gq); goto end_idle
        :: else -> skip
        fi
    };
    /* leases.claim_group: busy while live; else taken (again), its recorded results kept.
     * One step with the resends: the recorded results of open members are sent again,
     * not run (a fallback whose send was lost); the others are started after it, each its
     * own step (review 3: a member may start long after the claim). */
    atomic {
        if
#ifndef MUT_NOGROUPLEASE
        :: glive -> goto end_idle             /* TaskLeaseHeldError: delivered again later */
#endif
        :: else -> gwriter = me; glive = true; gpending = true;
            i1 = o1 && !gres[1] && !gcom[1]; i2 = o2 && !gres[2] && !gcom[2];
            if :: o1 && gres[1] -> put(resq[1]) :: else -> skip fi;
            if :: o2 && gres[2] -> put(resq[2]) :: else -> skip fi;
            o1 = false; o2 = false
        fi
    };
    /* each member starts on its own step (start_member; task 1 first: they are symmetric).
     * The assertion: invoked again only after a group lease ran out since its last run. */
#if STARTS_APART
    atomic { start_member(1, i1, r1, s1, h1) };
    atomic { start_member(2, i2, r2, s2, h2); gpending = false };
#else   /* both in one step (the two-runner safety run, for its memory bound) */
    atomic { start_member(1, i1, r1, s1, h1); start_member(2, i2, r2, s2, h2); gpending = false };
#endif
    /* ResultGroups._hand_off: a deferred member is sent as its own task message, THEN listed
     * done on the group lease (only if still ours); a crash between: the group message
     * comes back and runs it again (at least once), never lost */
    do
    :: h1 || h2 ->
        if
        :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the send */
        :: true -> skip
        fi;
#ifndef MUT_RECORDFIRST
        atomic { if :: h1 -> put(dq[1]) :: else -> put(dq[2]) fi };
        if
        :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the record */
        :: true -> skip
        fi;
        atomic {   /* GroupClaim.record({task: None}) */
            if
            :: h1 -> if :: gwriter == me -> gcom[1] = true :: else -> skip fi; h1 = false
            :: else -> if :: gwriter == me -> gcom[2] = true :: else -> skip fi; h2 = false
            fi }
#else
        atomic { if :: gwriter == me -> if :: h1 -> gcom[1] = true :: else -> gcom[2] = true fi
                    :: else -> skip fi };
        if
        :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the send */
        :: true -> skip
        fi;
        atomic { if :: h1 -> put(dq[1]); h1 = false :: else -> put(dq[2]); h2 = false fi }
#endif
    :: else -> break
    od;
rounds:
    /* ResultGroups._flush: what has ended is committed in rounds: both together, or one by one
     * (task 1 first: the two tasks are symmetric). One step with the round's way (the
     * runner dies, commits, or falls back), ResultGroups._commit's lease check and the load of
     * the head: what may happen in between (the lease runs out, another commit) makes the
     * same states as right after it. */
    atomic {
        if
        :: !r1 && !r2 && !s1 && !s2 -> take(gq); goto end_idle   /* every member ended: ack */
        :: !r1 && !r2 && (s1 || s2) -> goto end_idle  /* one not started: the message fails */
        :: r1 -> c1 = true; r1 = false
        :: !r1 && r2 -> c2 = true; r2 = false
        :: r1 && r2 -> c1 = true; c2 = true; r1 = false; r2 = false
        fi;
        if
        :: crashes > 0 -> crashes--; goto end_idle  /* dies: the lease stays live till it runs out */
        :: true -> goto fallback         /* the invocation is out of time, or the table fails */
        :: !(glive && gwriter == me) -> goto fallback   /* the lease ran out (or moved on) */
        :: glive && gwriter == me -> ls = seq; go = (c1 && task_open(1)) || (c2 && task_open(2))
        fi;
        if
        :: !go -> goto round_done          /* closed meanwhile: nothing to commit */
        :: else -> skip
        fi
    };
    goto commit;
load:   /* a conflict: load the head again */
    atomic {
        ls = seq; go = (c1 && task_open(1)) || (c2 && task_open(2));
        if
        :: !go -> goto round_done
        :: else -> skip
        fi
    };
commit:
    atomic {   /* InMemoryLog.commit of the round's results, conditional on seq */
        if
        :: on_seq(ls) ->
            seq++; ls = seq;
            if :: c1 && topen[1] -> topen[1] = false; result_ev[1]++; assert(result_ev[1] == 1)
               :: else -> skip fi;
            if :: c2 && topen[2] -> topen[2] = false; result_ev[2]++; assert(result_ev[2] == 1)
               :: else -> skip fi;
            if
            :: !topen[1] && !topen[2] -> pos = AT_PAUSE; passed = 1; outbox = OB_TIMER
            :: else -> outbox = 0
            fi;
            lob = outbox
        :: !on_seq(ls) -> goto load
        :: !on_seq(ls) -> goto fallback           /* conflicts exhausted */
        fi
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the send, unacknowledged */
    :: true -> atomic { send_outbox(lob, 1); clear_outbox(ls) }
    fi;
    goto round_done;
fallback:
    /* GroupLease.record: the round's results on the group lease (only if still ours), with
     * the members this claim committed before marked done, and the lease released once no
     * member runs; then each result sent to the transition queue */
    atomic {
        if
        :: gwriter == me ->
            if :: c1 -> gres[1] = true :: else -> skip fi;
            if :: c2 -> gres[2] = true :: else -> skip fi;
            if :: d1 -> gcom[1] = true :: else -> skip fi;
            if :: d2 -> gcom[2] = true :: else -> skip fi;
            if   /* released complete: every member ended (or was closed at the head read) */
            :: !r1 && !r2 -> glive = false;   /* not started: not done (GroupClaim.stopped) */
                if :: !s1 -> gcom[1] = true :: else -> skip fi;
                if :: !s2 -> gcom[2] = true :: else -> skip fi
            :: else -> skip
            fi
        :: else -> skip                          /* the lease moved on: its holder runs it */
        fi
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle   /* dies before the send */
    :: true -> skip
    fi;
    atomic {
        if :: c1 -> put(resq[1]) :: else -> skip fi;
        if :: c2 -> put(resq[2]) :: else -> skip fi
    };
round_done:
    atomic { d1 = d1 || c1; d2 = d2 || c2; c1 = false; c2 = false; ls = 0; lob = 0; go = false };
    goto rounds
}

/* a stepflow.worker worker over the activity API (activities/tasks.py TaskService) */
proctype Worker(byte me)
{
    byte a, d, ls, pv, pd, pexp;
    bool plive;
    byte beats = BEATS;

end_idle:
    atomic { a = 0; d = 0; ls = 0; pv = 0; pd = 0; pexp = 0; plive = false };
end_wait:
    /* GetActivityTask: InMemoryTaskQueue.receive */
    if
    :: aq[1] > 0 -> a = 1
    :: aq[2] > 0 -> a = 2
    fi;
handout:
    /* TaskService._hand_out -> Stepper.report_task(TaskStarted, guard) -> _commit:
     * load the head; the guard's tasks._open_state */
    atomic {
        if
        :: !task_open(a) -> take(aq[a]); goto end_idle   /* _ClosedError: ack the message */
        :: else -> ls = seq
        fi;
        /* the guard: leases.current (a read of the lease record), leases.hand_out */
        pv = lver[a]; plive = llive[a]; pexp = lexp[a] + (ldel[a] > 0 -> 1 : 0)
    };
    if
    :: plive -> goto end_idle                          /* LeaseHeldError: hand out nothing */
    :: !plive && pexp >= MAXDEL -> goto give_up        /* LeaseExhaustedError */
    :: else -> skip
    fi;
    atomic {
        /* decide TaskStarted: ActivityStarted the first time (InMemoryLog.commit of the
         * head and the lease, fenced), afterwards no event: the lease alone
         * (InMemoryLog.put_lease, a compare-and-set on the version) */
        if
        :: !started && on_seq(ls) && lver[a] == pv ->
            seq++; started = true; started_ev[a]++; assert(started_ev[a] == 1)
        :: started && lver[a] == pv -> skip
        :: else -> goto handout                 /* ConflictError / LeaseConflictError */
        fi;
        lexp[a] = pexp; lver[a]++; ldel[a]++; lown[a] = me; llive[a] = true;
        d = ldel[a]; ls = 0; pv = 0; pexp = 0
    };

holding:   /* the worker holds the token of delivery d of attempt a and runs the activity */
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle       /* the worker dies: its lease runs out */
    :: beats > 0 ->
        /* SendTaskHeartbeat: TaskService._report(TaskHeartbeat, _heartbeat): _check */
        beats--;
        atomic {
            if
            :: !task_open(a) -> goto end_idle     /* TaskTimedOut: the worker drops it */
            :: else -> pv = lver[a]; pd = ldel[a]
            fi
        };
        if
        :: pd != d -> goto end_idle               /* handed to another worker: TaskTimedOut */
        :: else -> skip
        fi;
        atomic {   /* no head change: put_lease(leases.heartbeat(lease)), a CAS */
            if
            :: lver[a] == pv -> lver[a]++; llive[a] = true
            :: else -> skip                       /* lost the race: the heartbeat fails */
            fi;
            pv = 0; pd = 0
        };
        goto holding
    :: true -> skip                               /* done: SendTaskSuccess */
    fi;
complete:
    /* SendTaskSuccess: TaskService._report(TaskSucceeded) -> Stepper._commit: load;
     * TaskService._check: the attempt is open ... */
    atomic {
        if
        :: !task_open(a) -> goto end_idle          /* TaskTimedOut */
        :: else -> ls = seq
        fi;
        /* ... and the token names the lease record's delivery; that record is the fence */
        pv = lver[a]; pd = ldel[a]
    };
    if
    :: pd != d -> goto end_idle                  /* handed to another worker since */
    :: else -> skip
    fi;
    atomic {   /* InMemoryLog.commit(head, seq, events, fence=LeaseFence(lease)) */
        if
#ifndef MUT_NOFENCE
        :: on_seq(ls) && lver[a] == pv ->
#else
        :: on_seq(ls) ->
#endif
            seq++; pos = AT_PAUSE; started = true; passed = a;
#ifndef MUT_NOOUTBOX
            outbox = OB_TIMER;
#endif
            result_ev[a]++;
            assert(result_ev[a] == 1);            /* no task result committed twice */
            assert(ldel[a] == d && lown[a] == me) /* only the current lease holder's */
        :: else -> goto complete                  /* ConflictError: check again */
        fi;
        ls = seq
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle        /* the API dies before it sends */
    :: true -> skip
    fi;
    /* Stepper._flush -> OutboxSender.flush; the mutant sends what it did not record */
    atomic { send_outbox(OB_TIMER, a); clear_outbox(ls); take(aq[a]) }   /* + queue ack */
    goto end_idle;

give_up:
    /* TaskService._give_up: report TaskFailed (its guard: tasks._open_state only) */
    atomic {
        if
        :: task_open(a) -> ls = seq
        :: else -> goto given_up
        fi
    };
    atomic {   /* InMemoryLog.commit, not fenced; no Catch: the execution fails */
        if
        :: on_seq(ls) ->
            seq++; status = FAILED; outbox = 0;
            result_ev[a]++; assert(result_ev[a] == 1)
        :: else -> goto give_up
        fi
    };
given_up:
    atomic { take(aq[a]) };
    goto end_idle
}

/* The activity in the delivery scenario (WORKERS=0): one worker that claims and completes,
 * without rivals (the lease scenario checks the claim, the lease and the fence) */
proctype Completer()
{
    byte a, ls;
end_idle:
    atomic { a = 0; ls = 0 };
end_wait:
    if
    :: aq[1] > 0 -> a = 1
    :: aq[2] > 0 -> a = 2
    fi;
complete:
    /* TaskService._hand_out, then SendTaskSuccess -> TaskService._report -> _commit */
    atomic {
        if
        :: !task_open(a) -> take(aq[a]); goto end_idle
        :: else -> ls = seq
        fi
    };
    atomic {   /* InMemoryLog.commit: ActivityStarted and the result, one worker */
        if
        :: on_seq(ls) ->
            seq++; pos = AT_PAUSE; started = true; passed = a;
            started_ev[a]++; result_ev[a]++;
#ifndef MUT_NOOUTBOX
            outbox = OB_TIMER;
#endif
            assert(result_ev[a] == 1); ls = seq
        :: else -> goto complete
        fi
    };
    if
    :: atomic { crashes > 0 -> crashes-- }; goto end_idle        /* the API dies before it sends */
    :: true -> skip
    fi;
    atomic { send_outbox(OB_TIMER, a); clear_outbox(ls); take(aq[a]) }
    goto end_idle
}

/* aws/outbox_repair.py OutboxRepair.run: a RUNNING head with a pending outbox */
proctype RepairJob()
{
end_idle:
    do   /* HOLD: a marked head is skipped until the mark (plus the job's age) has passed */
    :: atomic { created && status == RUNNING && pending(outbox) && rq == 0 -> rq++ }
    od
}

/* time, and the queues' faults */
proctype World()
{
end_idle:
    do
#if !PLAIN1
    :: atomic { llive[1] -> llive[1] = false; lost[1]++ }   /* a lease runs out (a slow worker) */
#endif
    :: atomic { llive[2] -> llive[2] = false; lost[2]++ }
    /* the group lease runs out; between a claim and its starts only SLOWSTARTS times (a
     * runner slower than the lease: bounded, or a lease could run out before every start) */
    :: atomic { glive && (!gpending || gslow > 0) ->
                if :: gpending -> gslow--; gpending = false :: else -> skip fi;
                glive = false; granlive[1] = false; granlive[2] = false }
#if HOLD
    /* the holder's deadline passes (held_mark.live: until - now <= CLOCK_SKEW): at any moment */
#ifdef MUT_PUSHMARK
    :: atomic { marked && !pushed -> marked = false }   /* pushed: a chain of later writers */
#else
    :: atomic { marked -> marked = false }
#endif
#endif
    :: atomic { dups > 0 && tq[1] == 1 -> dups--; tq[1]++ }   /* SQS duplicates */
    :: atomic { dups > 0 && tq[2] == 1 -> dups--; tq[2]++ }
    :: else -> skip   /* time passes and nothing happens: a stuck execution stays stuck
                         forever (an acceptance cycle) instead of a deadlock */
    od
}

init {
    atomic {
        run Stepper();
#if STEPPERS > 1
        run Stepper();
#endif
#if RUNNER && GROUP
        run GroupRunner(1);
#if RUNNERS > 1
        run GroupRunner(2);
#endif
#elif RUNNER
        run Runner(1);
#if RUNNERS > 1
        run Runner(2);
#endif
#elif WORKERS == 0
        run Completer();
#else
        run Worker(1);
#endif
#if !RUNNER && WORKERS > 1
        run Worker(2);
#endif
        run RepairJob(); run World()
    }
}

/* Every execution ends: once created it is eventually always finished, under weak
 * fairness and with every fault bounded.  A lost transition leaves it RUNNING. */
ltl ends { <>[] (!created || terminal) }
