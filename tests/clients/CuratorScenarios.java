// Curator 5 recipes (Debian's libcurator-*-java) against one ZooKeeper
// service; tests/test_clients_curator.py compiles and runs it against Java
// ZooKeeper and zabpy. Each scenario prints "PASS <name>" or
// "FAIL <name>: <why>"; the exit code is the number of failures.
//
//   java CuratorScenarios standalone <connect string>
//   java CuratorScenarios killleader <cs0> <cs1> <cs2>
//     three LeaderLatches, client i connected only to server i; prints
//     "LEADER <i>", waits for a line on stdin (the test has killed server i),
//     then checks that one of the two others takes over.

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public class CuratorScenarios {
    static final int WAIT_S = 30;
    static String connect;
    static int failures = 0;

    interface Scenario { String run() throws Exception; }  // null: passed

    static CuratorFramework client(String cs) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(
            cs, 6000, 15000, new ExponentialBackoffRetry(50, 10, 1000));
        c.start();
        if (!c.blockUntilConnected(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("no connection to " + cs);
        return c;
    }

    static void scenario(String name, Scenario s) {
        String why;
        try {
            why = s.run();
        } catch (Exception e) {
            why = e.toString();
        }
        if (why == null) {
            System.out.println("PASS " + name);
        } else {
            failures++;
            System.out.println("FAIL " + name + ": " + why);
        }
    }

    static byte[] bytes(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String str(byte[] b) { return b == null ? "null" : new String(b, StandardCharsets.UTF_8); }

    // Several sessions take one InterProcessMutex in turn; inside it each does
    // a read-modify-write of a plain node. Two holders at once would show as a
    // lost update or as holders > 1.
    static String mutex() throws Exception {
        int workers = 4, rounds = 15;
        CuratorFramework setup = client(connect);
        setup.create().creatingParentsIfNeeded().forPath("/curator/mutex-counter", bytes("0"));
        AtomicInteger holders = new AtomicInteger(), maxHolders = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            CuratorFramework c = client(connect);
            done.add(pool.submit(() -> {
                InterProcessMutex lock = new InterProcessMutex(c, "/curator/mutex");
                for (int i = 0; i < rounds; i++) {
                    if (!lock.acquire(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("acquire timed out");
                    try {
                        maxHolders.accumulateAndGet(holders.incrementAndGet(), Math::max);
                        int v = Integer.parseInt(str(c.getData().forPath("/curator/mutex-counter")));
                        c.setData().forPath("/curator/mutex-counter", bytes(Integer.toString(v + 1)));
                        holders.decrementAndGet();
                    } finally {
                        lock.release();
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : done) f.get(120, TimeUnit.SECONDS);
        pool.shutdown();
        int total = Integer.parseInt(str(setup.getData().forPath("/curator/mutex-counter")));
        if (total != workers * rounds) return "counter " + total + " != " + workers * rounds;
        if (maxHolders.get() != 1) return "max holders " + maxHolders.get();
        List<String> left = setup.getChildren().forPath("/curator/mutex");
        if (!left.isEmpty()) return "lock nodes left: " + left;
        return null;
    }

    static int leaders(List<LeaderLatch> latches) {
        int n = 0;
        for (LeaderLatch l : latches) if (l.hasLeadership()) n++;
        return n;
    }

    static boolean waitOneLeader(List<LeaderLatch> latches) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (System.nanoTime() < end) {
            if (leaders(latches) == 1) return true;
            Thread.sleep(20);  // polling: LeaderLatch has no "someone leads" callback
        }
        return false;
    }

    static String leaderLatch() throws Exception {
        List<LeaderLatch> latches = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            LeaderLatch l = new LeaderLatch(client(connect), "/curator/leader", "p" + i);
            l.start();
            latches.add(l);
        }
        List<String> handovers = new ArrayList<>();
        for (int round = 0; round < 2; round++) {
            if (!waitOneLeader(latches)) return "round " + round + ": " + leaders(latches) + " leaders";
            LeaderLatch leader = null;
            for (LeaderLatch l : latches) if (l.hasLeadership()) leader = l;
            String seen = latches.get(0).getLeader().getId();
            if (!seen.equals(leader.getId())) return "getLeader " + seen + " but " + leader.getId() + " leads";
            handovers.add(leader.getId());
            latches.remove(leader);
            leader.close();
        }
        if (!waitOneLeader(latches)) return "last latch did not lead";
        latches.get(0).close();
        if (handovers.size() != new java.util.HashSet<>(handovers).size()) return "leader repeated: " + handovers;
        return null;
    }

    static String atomicLong() throws Exception {
        int workers = 4, rounds = 25;
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        List<Future<Integer>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            CuratorFramework c = client(connect);
            done.add(pool.submit(() -> {
                DistributedAtomicLong n = new DistributedAtomicLong(c, "/curator/long", new RetryNTimes(1000, 1));
                int ok = 0;
                for (int i = 0; i < rounds; i++) if (n.increment().succeeded()) ok++;
                return ok;
            }));
        }
        int ok = 0;
        for (Future<Integer> f : done) ok += f.get(120, TimeUnit.SECONDS);
        pool.shutdown();
        AtomicValue<Long> v = new DistributedAtomicLong(client(connect), "/curator/long", new RetryNTimes(3, 10)).get();
        if (!v.succeeded() || v.postValue() != ok || ok != workers * rounds)
            return "value " + v.postValue() + ", " + ok + " increments succeeded of " + workers * rounds;
        return null;
    }

    static String cache() throws Exception {
        CuratorFramework c = client(connect);
        CuratorFramework writer = client(connect);
        c.create().creatingParentsIfNeeded().forPath("/curator/cache/pre", bytes("p"));
        List<String> events = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch initialized = new CountDownLatch(1);
        CuratorCache cache = CuratorCache.build(c, "/curator/cache");
        cache.listenable().addListener(CuratorCacheListener.builder()
            .forAll((type, old, data) -> events.add(type + " " + (data != null ? data.getPath() + "=" + str(data.getData()) : old.getPath())))
            .forInitialized(initialized::countDown).build());
        cache.start();
        if (!initialized.await(WAIT_S, TimeUnit.SECONDS)) return "not initialized";
        // The initial two come from one walk of the tree, in either order.
        List<String> expected = new ArrayList<>(Arrays.asList(
            "NODE_CREATED /curator/cache/pre=p", "NODE_CREATED /curator/cache="));
        if (events.size() == 2) Collections.sort(events);
        // One write at a time, each awaited: the cache sees a change through a
        // watch and then reads the node, so writes that do not wait for their
        // event may legitimately coalesce.
        for (int i = 0; i < 5; i++) {
            String p = "/curator/cache/n" + i;
            step(events, expected, () -> writer.create().forPath(p, bytes("a")), "NODE_CREATED " + p + "=a");
            step(events, expected, () -> writer.setData().forPath(p, bytes("b")), "NODE_CHANGED " + p + "=b");
            step(events, expected, () -> writer.create().forPath(p + "/deep", bytes("d")), "NODE_CREATED " + p + "/deep=d");
            step(events, expected, () -> writer.setData().forPath(p + "/deep", bytes("e")), "NODE_CHANGED " + p + "/deep=e");
            step(events, expected, () -> writer.delete().forPath(p + "/deep"), "NODE_DELETED " + p + "/deep");
            step(events, expected, () -> writer.delete().forPath(p), "NODE_DELETED " + p);
        }
        List<String> got = new ArrayList<>(events);
        cache.close();
        // The initial two may come in either order (one getChildren walk).
        if (!got.equals(expected)) return "events " + got + " expected " + expected;
        return null;
    }

    interface Write { Object run() throws Exception; }

    static void step(List<String> events, List<String> expected, Write w, String event) throws Exception {
        w.run();
        expected.add(event);
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (events.size() < expected.size() && System.nanoTime() < end) Thread.sleep(2);
    }

    static String sharedCount() throws Exception {
        SharedCount a = new SharedCount(client(connect), "/curator/count", 7);
        SharedCount b = new SharedCount(client(connect), "/curator/count", 99);
        a.start();
        b.start();
        if (b.getCount() != 7) return "second seed won: " + b.getCount();
        VersionedValue<Integer> va = a.getVersionedValue();
        if (!a.trySetCount(va, 8)) return "first trySetCount failed";
        if (b.trySetCount(va, 9)) {
            return "stale trySetCount succeeded";
        }
        int workers = 3, rounds = 10;
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            SharedCount s = new SharedCount(client(connect), "/curator/count", 0);
            s.start();
            done.add(pool.submit(() -> {
                for (int i = 0; i < rounds; i++) {
                    while (true) {
                        VersionedValue<Integer> v = s.getVersionedValue();
                        if (s.trySetCount(v, v.getValue() + 1)) break;
                    }
                }
                s.close();
                return null;
            }));
        }
        for (Future<?> f : done) f.get(120, TimeUnit.SECONDS);
        pool.shutdown();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (a.getCount() != 8 + workers * rounds && System.nanoTime() < end) Thread.sleep(10);
        if (a.getCount() != 8 + workers * rounds) return "count " + a.getCount();
        a.close();
        b.close();
        return null;
    }

    static String semaphore() throws Exception {
        int workers = 5, rounds = 6, leases = 2;
        AtomicInteger holders = new AtomicInteger(), maxHolders = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            CuratorFramework c = client(connect);
            done.add(pool.submit(() -> {
                InterProcessSemaphoreV2 sem = new InterProcessSemaphoreV2(c, "/curator/sem", leases);
                for (int i = 0; i < rounds; i++) {
                    Lease lease = sem.acquire(WAIT_S, TimeUnit.SECONDS);
                    if (lease == null) throw new IllegalStateException("acquire timed out");
                    maxHolders.accumulateAndGet(holders.incrementAndGet(), Math::max);
                    Thread.sleep(5);  // hold the lease a little so that holders overlap
                    holders.decrementAndGet();
                    sem.returnLease(lease);
                }
                return null;
            }));
        }
        for (Future<?> f : done) f.get(120, TimeUnit.SECONDS);
        pool.shutdown();
        if (maxHolders.get() > leases) return "max holders " + maxHolders.get();
        return null;
    }

    static String barriers() throws Exception {
        CuratorFramework c = client(connect);
        DistributedBarrier gate = new DistributedBarrier(c, "/curator/gate");
        gate.setBarrier();
        int members = 3;
        ExecutorService pool = Executors.newFixedThreadPool(members);
        List<Future<String>> done = new ArrayList<>();
        AtomicInteger passedGate = new AtomicInteger();
        for (int m = 0; m < members; m++) {
            CuratorFramework mc = client(connect);
            done.add(pool.submit(() -> {
                new DistributedBarrier(mc, "/curator/gate").waitOnBarrier(WAIT_S, TimeUnit.SECONDS);
                passedGate.incrementAndGet();
                DistributedDoubleBarrier dbl = new DistributedDoubleBarrier(mc, "/curator/double", members);
                if (!dbl.enter(WAIT_S, TimeUnit.SECONDS)) return "enter timed out";
                if (!dbl.leave(WAIT_S, TimeUnit.SECONDS)) return "leave timed out";
                return null;
            }));
        }
        Thread.sleep(100);  // give the members time to block on the gate
        if (passedGate.get() != 0) return "passed a set barrier";
        gate.removeBarrier();
        for (Future<String> f : done) {
            String why = f.get(120, TimeUnit.SECONDS);
            if (why != null) return why;
        }
        pool.shutdown();
        return passedGate.get() == members ? null : "passed " + passedGate.get();
    }

    // Expire the session under a PersistentNode (another handle takes the
    // session over and closes it); the recipe must create the node again in
    // the new session.
    static String persistentNode() throws Exception {
        CuratorFramework c = client(connect);
        c.create().creatingParentsIfNeeded().forPath("/curator/pn");
        PersistentNode node = new PersistentNode(c, CreateMode.EPHEMERAL, false, "/curator/pn/me", bytes("x"));
        node.start();
        if (!node.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS)) return "not created";
        ZooKeeper zk = c.getZookeeperClient().getZooKeeper();
        long old = zk.getSessionId();
        Stat st = c.checkExists().forPath("/curator/pn/me");
        if (st == null || st.getEphemeralOwner() != old) return "owner " + st;
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper thief = new ZooKeeper(connect, 6000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        }, old, zk.getSessionPasswd());
        if (!connected.await(WAIT_S, TimeUnit.SECONDS)) return "takeover did not connect";
        thief.close();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        CuratorFramework observer = client(connect);
        while (System.nanoTime() < end) {
            st = observer.checkExists().forPath("/curator/pn/me");
            if (st != null && st.getEphemeralOwner() != old) break;
            Thread.sleep(20);  // polling: the recreation happens on Curator's threads
        }
        if (st == null || st.getEphemeralOwner() == old) return "not recreated: " + st;
        if (!"x".equals(str(observer.getData().forPath("/curator/pn/me")))) return "data lost";
        node.close();
        return null;
    }

    static String killLeader(String[] servers) throws Exception {
        List<LeaderLatch> latches = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            LeaderLatch l = new LeaderLatch(client(servers[i]), "/curator/kill-leader", Integer.toString(i));
            l.start();
            latches.add(l);
        }
        if (!waitOneLeader(latches)) return leaders(latches) + " leaders before the kill";
        int leader = -1;
        for (int i = 0; i < 3; i++) if (latches.get(i).hasLeadership()) leader = i;
        System.out.println("LEADER " + leader);
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in)).readLine();  // server killed
        List<LeaderLatch> rest = new ArrayList<>(latches);
        rest.remove(leader);
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < end) {
            if (leaders(rest) == 1 && !latches.get(leader).hasLeadership()) break;
            Thread.sleep(50);  // polling: waits out the dead client's session
        }
        if (leaders(rest) != 1) return leaders(rest) + " leaders among the survivors";
        if (latches.get(leader).hasLeadership()) return "the cut-off client still claims leadership";
        return null;
    }

    public static void main(String[] args) throws Exception {
        if (args[0].equals("standalone")) {
            connect = args[1];
            scenario("InterProcessMutex", CuratorScenarios::mutex);
            scenario("LeaderLatch", CuratorScenarios::leaderLatch);
            scenario("DistributedAtomicLong", CuratorScenarios::atomicLong);
            scenario("CuratorCache", CuratorScenarios::cache);
            scenario("SharedCount", CuratorScenarios::sharedCount);
            scenario("InterProcessSemaphoreV2", CuratorScenarios::semaphore);
            scenario("Barriers", CuratorScenarios::barriers);
            scenario("PersistentNode", CuratorScenarios::persistentNode);
        } else {
            String[] servers = Arrays.copyOfRange(args, 1, 4);
            connect = String.join(",", servers);
            scenario("LeaderLatch kill leader's server", () -> killLeader(servers));
        }
        System.out.flush();  // no close: the servers go next, and a cut-off client's close waits
        Runtime.getRuntime().halt(failures);
    }
}
