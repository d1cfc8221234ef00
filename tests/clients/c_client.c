/* A scenario for Debian's libzookeeper-mt (the C client, 3.8): sync and
 * async API, versions, ACLs and digest auth, multi, watches, ~1 MB data,
 * session timeout negotiation and expiry.  It prints one line per result
 * on stdout; tests/test_clients_c.py runs it against Java ZooKeeper and
 * zabpy and compares the transcripts.
 *
 * Watch events and async completions arrive on the library's completion
 * thread; they are queued and printed by the main thread at fixed points,
 * so the transcript does not depend on thread scheduling.
 *
 * usage: c_client host:port
 */
#include <zookeeper/zookeeper.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_S 30
#define MAX_LINES 512

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char *lines[MAX_LINES];
static int nlines;
static const char *hosts;

static void queue_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void queue_line(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    if (nlines < MAX_LINES) lines[nlines++] = strdup(buf);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Wait for n queued lines, print them (sorted when they come from several
 * handles, whose relative order is not defined) and clear the queue. */
static void flush_lines(const char *label, int n, int sort) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_S;
    pthread_mutex_lock(&mu);
    while (nlines < n) {
        if (pthread_cond_timedwait(&cv, &mu, &deadline) != 0) break;
    }
    if (sort) qsort(lines, nlines, sizeof lines[0], by_string);
    printf("%s: %d\n", label, nlines);
    for (int i = 0; i < nlines; i++) {
        printf("  %s\n", lines[i]);
        free(lines[i]);
    }
    nlines = 0;
    pthread_mutex_unlock(&mu);
}

static const char *type_name(int t) {
    if (t == ZOO_CREATED_EVENT) return "created";
    if (t == ZOO_DELETED_EVENT) return "deleted";
    if (t == ZOO_CHANGED_EVENT) return "changed";
    if (t == ZOO_CHILD_EVENT) return "child";
    if (t == ZOO_SESSION_EVENT) return "session";
    if (t == ZOO_NOTWATCHING_EVENT) return "notwatching";
    return "?";
}

static const char *state_name(int s) {
    if (s == ZOO_CONNECTED_STATE) return "connected";
    if (s == ZOO_EXPIRED_SESSION_STATE) return "expired";
    if (s == ZOO_AUTH_FAILED_STATE) return "auth_failed";
    if (s == ZOO_CONNECTING_STATE) return "connecting";
    if (s == ZOO_ASSOCIATING_STATE) return "associating";
    return "?";
}

/* Session events go to the queue only when asked for (ctx "S"); node
 * events always, tagged with the handle's name. */
static void watcher(zhandle_t *zh __attribute__((unused)), int type, int state, const char *path, void *ctx) {
    const char *name = ctx ? (const char *)ctx : "?";
    if (type == ZOO_SESSION_EVENT) {
        /* connecting/associating come and go with the network: only terminal states */
        if (name[0] == 'S' && (state == ZOO_EXPIRED_SESSION_STATE ||
                               state == ZOO_AUTH_FAILED_STATE))
            queue_line("%s session %s", name, state_name(state));
        return;
    }
    queue_line("%s %s %s", name, type_name(type), path);
}

/* Poll the handle's state (the session events of connecting handles are
 * not queued): 1 when it reached `state`. */
static int wait_state(zhandle_t *zh, int state) {
    for (int i = 0; i < WAIT_S * 100 && zoo_state(zh) != state; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return zoo_state(zh) == state;
}

static zhandle_t *open_handle(const char *name, int timeout_ms, const clientid_t *id) {
    zhandle_t *zh = zookeeper_init(hosts, watcher, timeout_ms, id, (void *)name, 0);
    if (!zh) { perror("zookeeper_init"); exit(2); }
    return zh;
}

static zhandle_t *connect_as(const char *name, int timeout_ms, const clientid_t *id) {
    zhandle_t *zh = open_handle(name, timeout_ms, id);
    if (!wait_state(zh, ZOO_CONNECTED_STATE)) { fprintf(stderr, "no connection\n"); exit(2); }
    return zh;
}

static clientid_t self_id;

static void print_stat(const char *what, const struct Stat *s) {
    const char *owner = s->ephemeralOwner == 0 ? "0"
        : s->ephemeralOwner == self_id.client_id ? "self" : "other";
    printf("%s: czxid=%#llx mzxid=%#llx pzxid=%#llx version=%d cversion=%d aversion=%d "
           "owner=%s dataLength=%d numChildren=%d\n", what, (long long)s->czxid,
           (long long)s->mzxid, (long long)s->pzxid, s->version, s->cversion, s->aversion,
           owner, s->dataLength, s->numChildren);
}

static void print_rc(const char *what, int rc) { printf("%s: %s\n", what, zerror(rc)); }

static void print_children(const char *what, int rc, struct String_vector *v) {
    printf("%s: %s [", what, zerror(rc));
    if (rc == ZOK) {
        qsort(v->data, v->count, sizeof v->data[0], by_string);
        for (int i = 0; i < v->count; i++) printf("%s%s", i ? " " : "", v->data[i]);
        deallocate_String_vector(v);
    }
    printf("]\n");
}

static void print_acl(const char *what, int rc, struct ACL_vector *acl) {
    printf("%s: %s", what, zerror(rc));
    if (rc == ZOK) {
        for (int i = 0; i < acl->count; i++)
            printf(" %s:%s:%d", acl->data[i].id.scheme, acl->data[i].id.id, acl->data[i].perms);
        deallocate_ACL_vector(acl);
    }
    printf("\n");
}

/* ---- async completions: queue a line each -------------------------------- */

static void string_done(int rc, const char *value, const void *data) {
    queue_line("%s %s %s", (const char *)data, zerror(rc), value ? value : "-");
}
static void void_done(int rc, const void *data) {
    queue_line("%s %s", (const char *)data, zerror(rc));
}
static void stat_done(int rc, const struct Stat *s, const void *data) {
    queue_line("%s %s version=%d", (const char *)data, zerror(rc), s ? s->version : -1);
}
static void data_done(int rc, const char *value, int len, const struct Stat *s, const void *data) {
    queue_line("%s %s %.*s version=%d", (const char *)data, zerror(rc), len > 0 ? len : 0,
               value ? value : "", s ? s->version : -1);
}
static void children_done(int rc, const struct String_vector *v, const struct Stat *s,
                          const void *data) {
    queue_line("%s %s count=%d numChildren=%d", (const char *)data, zerror(rc),
               v ? v->count : -1, s ? s->numChildren : -1);
}

static char order_tags[100][16];

static void ordered_done(int rc, const char *value, const void *data) {
    (void)value;
    queue_line("%s %s", (const char *)data, zerror(rc));
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s host:port\n", argv[0]); return 2; }
    hosts = argv[1];
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    setvbuf(stdout, NULL, _IOLBF, 0);

    char path[256], buf[1024];
    int len, rc;
    struct Stat st;
    struct String_vector kids;
    struct ACL_vector acl;

    /* ---- sessions: negotiated timeouts ---- */
    zhandle_t *a = connect_as("A", 10000, NULL);
    self_id = *zoo_client_id(a);
    printf("A timeout: %d\n", zoo_recv_timeout(a));
    zhandle_t *low = connect_as("low", 100, NULL);
    printf("low timeout: %d\n", zoo_recv_timeout(low));
    zookeeper_close(low);
    zhandle_t *high = connect_as("high", 600000, NULL);
    printf("high timeout: %d\n", zoo_recv_timeout(high));
    zookeeper_close(high);

    /* ---- sync API: every create mode, stats, errors ---- */
    rc = zoo_create2(a, "/capi", "root", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, path,
                     sizeof path, &st);
    printf("create /capi: %s %s\n", zerror(rc), path);
    print_stat("create2 stat", &st);
    print_rc("create /capi again", zoo_create(a, "/capi", "x", 1, &ZOO_OPEN_ACL_UNSAFE,
                                              ZOO_PERSISTENT, NULL, 0));
    for (int i = 0; i < 3; i++) {
        rc = zoo_create(a, "/capi/seq-", "s", 1, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_PERSISTENT_SEQUENTIAL, path, sizeof path);
        printf("create seq: %s %s\n", zerror(rc), path);
    }
    rc = zoo_create(a, "/capi/eph", "e", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, path,
                    sizeof path);
    printf("create eph: %s %s\n", zerror(rc), path);
    rc = zoo_create(a, "/capi/ephseq-", "e", 1, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_EPHEMERAL_SEQUENTIAL, path, sizeof path);
    printf("create ephseq: %s %s\n", zerror(rc), path);
    print_rc("create under eph", zoo_create(a, "/capi/eph/x", "", 0, &ZOO_OPEN_ACL_UNSAFE,
                                            ZOO_PERSISTENT, NULL, 0));
    rc = zoo_create2(a, "/capi/cont", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, path,
                     sizeof path, &st);
    printf("create container: %s %s\n", zerror(rc), path);
    rc = zoo_create2_ttl(a, "/capi/ttl", "t", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL,
                         600000, path, sizeof path, &st);
    printf("create ttl: %s %s\n", zerror(rc), path);
    print_stat("ttl stat", &st);
    rc = zoo_create2_ttl(a, "/capi/ttl0", "t", 1, &ZOO_OPEN_ACL_UNSAFE,
                         ZOO_PERSISTENT_WITH_TTL, 0, path, sizeof path, &st);
    printf("create ttl 0: %s\n", zerror(rc));
    print_rc("create no parent", zoo_create(a, "/capi/none/x", "", 0, &ZOO_OPEN_ACL_UNSAFE,
                                            ZOO_PERSISTENT, NULL, 0));
    print_rc("create bad path", zoo_create(a, "/capi//x", "", 0, &ZOO_OPEN_ACL_UNSAFE,
                                           ZOO_PERSISTENT, NULL, 0));
    rc = zoo_create(a, "/capi/null", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    print_rc("create null data", rc);
    len = sizeof buf;
    rc = zoo_get(a, "/capi/null", 0, buf, &len, &st);
    printf("get null data: %s len=%d\n", zerror(rc), len);
    rc = zoo_get_children2(a, "/capi", 0, &kids, &st);
    print_children("children /capi", rc, &kids);
    print_stat("children stat", &st);
    rc = zoo_exists(a, "/capi/eph", 0, &st);
    print_rc("exists eph", rc);
    print_stat("eph stat", &st);
    print_rc("exists missing", zoo_exists(a, "/capi/missing", 0, &st));

    /* ---- versions ---- */
    print_rc("set v0", zoo_set2(a, "/capi", "v1", 2, 0, &st));
    print_stat("after set v0", &st);
    print_rc("set stale v0", zoo_set(a, "/capi", "v2", 2, 0));
    print_rc("set any", zoo_set(a, "/capi", "v2", 2, -1));
    print_rc("set missing", zoo_set(a, "/capi/missing", "", 0, -1));
    print_rc("delete non-empty", zoo_delete(a, "/capi", -1));
    print_rc("delete seq bad version", zoo_delete(a, "/capi/seq-0000000000", 5));
    print_rc("delete seq v0", zoo_delete(a, "/capi/seq-0000000000", 0));
    print_rc("delete missing", zoo_delete(a, "/capi/seq-0000000000", -1));
    len = sizeof buf;
    rc = zoo_get(a, "/capi", 0, buf, &len, &st);
    printf("get /capi: %s %.*s\n", zerror(rc), len, buf);
    print_stat("get stat", &st);

    /* ---- ACLs and digest auth ---- */
    print_rc("creator acl without auth", zoo_create(a, "/capi/mine", "m", 1,
                                                    &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT,
                                                    NULL, 0));
    zoo_add_auth(a, "digest", "u:p", 3, void_done, "A addauth digest u:p");
    flush_lines("addauth", 1, 0);
    print_rc("creator acl with auth", zoo_create(a, "/capi/mine", "m", 1, &ZOO_CREATOR_ALL_ACL,
                                                 ZOO_PERSISTENT, NULL, 0));
    print_acl("acl /capi/mine", zoo_get_acl(a, "/capi/mine", &acl, &st), &acl);
    print_rc("create read-only", zoo_create(a, "/capi/ro", "r", 1, &ZOO_READ_ACL_UNSAFE,
                                            ZOO_PERSISTENT, NULL, 0));
    print_rc("set read-only", zoo_set(a, "/capi/ro", "w", 1, -1));
    zhandle_t *b = connect_as("B", 10000, NULL);
    len = sizeof buf;
    print_rc("B get mine", zoo_get(b, "/capi/mine", 0, buf, &len, &st));
    print_acl("B acl mine", zoo_get_acl(b, "/capi/mine", &acl, &st), &acl);
    print_rc("B set acl mine", zoo_set_acl(b, "/capi/mine", -1, &ZOO_OPEN_ACL_UNSAFE));
    zoo_add_auth(b, "digest", "u:wrong", 7, void_done, "B addauth digest u:wrong");
    flush_lines("addauth", 1, 0);
    print_rc("B get mine wrong password", zoo_get(b, "/capi/mine", 0, buf, &len, &st));
    zoo_add_auth(b, "digest", "u:p", 3, void_done, "B addauth digest u:p");
    flush_lines("addauth", 1, 0);
    len = sizeof buf;
    rc = zoo_get(b, "/capi/mine", 0, buf, &len, &st);
    printf("B get mine with auth: %s %.*s\n", zerror(rc), len, buf);
    print_rc("B set acl stale version", zoo_set_acl(b, "/capi/mine", 3, &ZOO_OPEN_ACL_UNSAFE));
    print_rc("B set acl v0", zoo_set_acl(b, "/capi/mine", 0, &ZOO_OPEN_ACL_UNSAFE));
    print_acl("acl after set", zoo_get_acl(a, "/capi/mine", &acl, &st), &acl);
    print_stat("acl stat", &st);
    {
        struct ACL bad[1] = {{ZOO_PERM_ALL, {"digest", "not-a-digest-id"}}};
        struct ACL_vector badv = {1, bad};
        print_rc("invalid acl", zoo_create(a, "/capi/bad", "", 0, &badv, ZOO_PERSISTENT,
                                           NULL, 0));
        struct ACL empty[1];
        struct ACL_vector emptyv = {0, empty};
        print_rc("empty acl", zoo_create(a, "/capi/bad", "", 0, &emptyv, ZOO_PERSISTENT,
                                         NULL, 0));
        struct ACL ip[1] = {{ZOO_PERM_READ | ZOO_PERM_WRITE, {"ip", "127.0.0.1"}}};
        struct ACL_vector ipv = {1, ip};
        print_rc("ip acl", zoo_create(a, "/capi/ip", "", 0, &ipv, ZOO_PERSISTENT, NULL, 0));
        print_acl("ip acl read", zoo_get_acl(a, "/capi/ip", &acl, &st), &acl);
    }

    /* ---- multi ---- */
    {
        zoo_op_t ops[4];
        zoo_op_result_t res[4];
        char p0[64];
        zoo_create_op_init(&ops[0], "/capi/m1", "m", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                           p0, sizeof p0);
        zoo_set_op_init(&ops[1], "/capi/m1", "mm", 2, 0, &st);
        zoo_check_op_init(&ops[2], "/capi/m1", 1);
        zoo_delete_op_init(&ops[3], "/capi/ro", 0);
        rc = zoo_multi(a, 4, ops, res);
        printf("multi ok: %s", zerror(rc));
        for (int i = 0; i < 4; i++) printf(" [%s]", zerror(res[i].err));
        printf(" created=%s\n", p0);
        print_stat("multi set stat", &st);
        zoo_check_op_init(&ops[0], "/capi/m1", 1);
        zoo_create_op_init(&ops[1], "/capi/m2", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                           p0, sizeof p0);
        zoo_check_op_init(&ops[2], "/capi/m1", 7);
        zoo_delete_op_init(&ops[3], "/capi/m1", -1);
        rc = zoo_multi(a, 4, ops, res);
        printf("multi failing: %s", zerror(rc));
        for (int i = 0; i < 4; i++) printf(" [%s]", zerror(res[i].err));
        printf("\n");
        print_rc("m2 after failed multi", zoo_exists(a, "/capi/m2", 0, &st));
        zoo_delete_op_init(&ops[0], "/capi/m1", 0);
        rc = zoo_multi(a, 1, ops, res);
        printf("multi delete stale: %s [%s]\n", zerror(rc), zerror(res[0].err));
        rc = zoo_amulti(a, 0, ops, res, void_done, "empty amulti");
        flush_lines("empty multi", 1, 0);
    }

    /* ---- watches, triggered from another session ---- */
    len = sizeof buf;
    zoo_wget(a, "/capi", watcher, "A", buf, &len, &st);
    zoo_wexists(a, "/capi/w", watcher, "A", &st);
    zoo_wget_children2(a, "/capi", watcher, "A", &kids, &st);
    deallocate_String_vector(&kids);
    zoo_wexists(b, "/capi/w", watcher, "B", &st);
    print_rc("B create w", zoo_create(b, "/capi/w", "", 0, &ZOO_OPEN_ACL_UNSAFE,
                                      ZOO_PERSISTENT, NULL, 0));
    flush_lines("events after create", 3, 1);
    print_rc("B set /capi", zoo_set(b, "/capi", "x", 1, -1));
    flush_lines("events after set", 1, 1);
    len = sizeof buf;
    zoo_wget(a, "/capi/w", watcher, "A", buf, &len, &st);
    zoo_wexists(b, "/capi/w", watcher, "B", &st);
    zoo_wget_children2(a, "/capi/w", watcher, "A", &kids, &st);
    deallocate_String_vector(&kids);
    zoo_wget_children2(a, "/capi", watcher, "A", &kids, &st);
    deallocate_String_vector(&kids);
    print_rc("A delete w", zoo_delete(a, "/capi/w", -1));
    flush_lines("events after delete", 3, 1);
    zoo_wexists(a, "/capi/gone", watcher, "A", &st);
    print_rc("remove watches", zoo_remove_all_watches(a, "/capi/gone", ZWATCHTYPE_ANY, 0));
    print_rc("remove watches again", zoo_remove_all_watches(a, "/capi/gone", ZWATCHTYPE_ANY, 0));
    print_rc("create gone", zoo_create(b, "/capi/gone", "", 0, &ZOO_OPEN_ACL_UNSAFE,
                                       ZOO_PERSISTENT, NULL, 0));
    zoo_async(a, "/capi", string_done, "A sync");
    flush_lines("after removed watch", 1, 0);

    /* ---- ~1 MB of data ---- */
    {
        int big = 1000 * 1000;
        char *data = malloc(big), *back = malloc(big + 16);
        for (int i = 0; i < big; i++) data[i] = (char)('a' + (i * 7) % 26);
        print_rc("create 1 MB", zoo_create(a, "/capi/big", data, big, &ZOO_OPEN_ACL_UNSAFE,
                                           ZOO_PERSISTENT, NULL, 0));
        len = big + 16;
        rc = zoo_get(b, "/capi/big", 0, back, &len, &st);
        printf("get 1 MB: %s len=%d same=%d\n", zerror(rc), len,
               len == big && memcmp(data, back, big) == 0);
        print_stat("big stat", &st);
        rc = zoo_get_children2(a, "/capi", 0, &kids, &st);
        print_children("children with big", rc, &kids);
        print_stat("parent stat", &st);
        free(data);
        free(back);
    }

    /* ---- async API, pipelined ---- */
    for (int i = 0; i < 100; i++) {
        snprintf(order_tags[i], sizeof order_tags[i], "acreate %02d", i);
        snprintf(path, sizeof path, "/capi/a%02d", i);
        zoo_acreate(a, path, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, ordered_done,
                    order_tags[i]);
    }
    flush_lines("async creates in order", 100, 0);
    zoo_aset(a, "/capi/a00", "z", 1, 0, stat_done, "aset a00 v0");
    zoo_aset(a, "/capi/a00", "z", 1, 0, stat_done, "aset a00 stale");
    zoo_aget(a, "/capi/a00", 0, data_done, "aget a00");
    zoo_aget(a, "/capi/none", 0, data_done, "aget none");
    zoo_aget_children2(a, "/capi", 0, children_done, "achildren /capi");
    zoo_adelete(a, "/capi/a00", 3, void_done, "adelete a00 stale");
    zoo_adelete(a, "/capi/a00", -1, void_done, "adelete a00");
    zoo_acreate(a, "/capi/a00/x", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, string_done,
                "acreate under deleted");
    zoo_async(a, "/capi", string_done, "async sync");
    flush_lines("async mix in order", 9, 0);

    /* ---- session expiry: a session closed through a second handle ---- */
    /* E, cut off when E2 takes its session, reconnects after a 60th of
     * its timeout and would take the session back; at 20 s that is 333 ms
     * for E2's close to land first (at 2 s, 33 ms: a loaded machine lost
     * that race: E2's close came on a connection no longer the session's). */
    zhandle_t *e = connect_as("S-E", 20000, NULL);
    const clientid_t *eid = zoo_client_id(e);
    print_rc("E create ephemeral", zoo_create(e, "/capi/e", "", 0, &ZOO_OPEN_ACL_UNSAFE,
                                              ZOO_EPHEMERAL, NULL, 0));
    zoo_wexists(b, "/capi/e", watcher, "B", &st);
    clientid_t copy = *eid;
    zhandle_t *e2 = connect_as("E2", 2000, &copy);
    printf("E2 same session: %d\n", zoo_client_id(e2)->client_id == copy.client_id);
    zookeeper_close(e2);
    flush_lines("expiry", 2, 1);
    print_rc("E get after expiry", zoo_exists(e, "/capi/e", 0, &st));
    zookeeper_close(e);
    zhandle_t *bad = open_handle("bad", 2000, &copy);
    printf("reconnect expired: %d\n", wait_state(bad, ZOO_EXPIRED_SESSION_STATE));
    zookeeper_close(bad);

    /* ---- close: the ephemerals go ---- */
    zookeeper_close(a);
    rc = zoo_get_children2(b, "/capi", 0, &kids, &st);
    print_children("children after A closed", rc, &kids);
    print_stat("final stat", &st);
    zookeeper_close(b);

    /* Last: the failed session lives on until it times out (a txn whose
     * zxid would shift everything printed after it). */
    zhandle_t *c = connect_as("S-C", 10000, NULL);
    zoo_add_auth(c, "nosuchscheme", "x", 1, void_done, "C addauth nosuchscheme");
    flush_lines("bad scheme", 2, 1);
    zookeeper_close(c);
    return 0;
}
