"""Slow, obviously-correct twins of the content-sharing kernels of pagecore.sim.memory, written
from the module docstrings (paper §4.2-4.3, Figure 3): Python lists and a dict for the table.

A ``World`` is every VM's frames (state, content id, owner, alias, CLOCK bit, counters, image)
plus the host's free pages, swap, the next fresh content id and the content table as a dict:
``table[content] = ["shared", refs]`` or ``["hint", vm, frame]``.
"""

from __future__ import annotations

import numpy as np

from pagecore.sim import memory as m

U, P, Z, S, W, B = m.UNBACKED, m.PRIVATE, m.ZERO, m.SHARED, m.SWAPPED, m.BALLOONED


class VM:
    def __init__(self, mem: m.VMMemory):
        self.state = mem.state.tolist()
        self.cont = mem.cont.tolist()
        self.owner = mem.owner.tolist()
        self.alias = mem.alias.tolist()
        self.refbit = mem.refbit.tolist()
        self.sampled = mem.sampled.tolist()
        self.stamp = mem.stamp.tolist()
        self.image = mem.image.tolist()
        self.hands = mem.hands.tolist()
        self.c = mem.c.tolist()

    def set(self, f, new):
        self.c[self.state[f]] -= 1
        self.state[f] = new
        self.c[new] += 1


class World:
    def __init__(self, mems, table: m.ContentTable, free: int, swap: int, next_id: int):
        self.vms = [VM(x) for x in mems]
        self.table = {}
        for i in np.flatnonzero(table.keys >= 0):
            k = int(table.keys[i])
            if table.refs[i] > 0:
                self.table[k] = ["shared", int(table.refs[i])]
            else:
                self.table[k] = ["hint", int(table.hvm[i]), int(table.hfr[i])]
        self.free = free
        self.swap = swap
        self.next_id = next_id
        self.freed = 0
        self.stale = 0

    @property
    def shared_pages(self):
        return sum(1 for e in self.table.values() if e[0] == "shared")

    def fresh(self):
        self.next_id += 1
        return self.next_id - 1

    # -- the table -------------------------------------------------------------------------
    def release(self, key):
        """A frame stops mapping the shared page of ``key``."""
        e = self.table[key]
        assert e[0] == "shared"
        e[1] -= 1
        if e[1] == 0:
            del self.table[key]
            self.free += 1
            self.freed += 1

    def share(self, v, f, hint_unmatched, why):
        """Figure 3: try to share frame f of VM v; True if a machine page was reclaimed."""
        vm = self.vms[v]
        if vm.state[f] == Z:
            vm.set(f, S)
            self.free += 1
            vm.c[why] += 1
            return True
        if vm.state[f] != P:
            return False
        key = vm.cont[f]
        e = self.table.get(key)
        if e is None:
            if hint_unmatched:
                self.table[key] = ["hint", v, f]
            return False
        if e[0] == "shared":
            e[1] += 1
            vm.set(f, S)
            vm.c[m.C_SHARED_CONTENT] += 1
            self.free += 1
            vm.c[why] += 1
            return True
        _, hv, hf = e
        if (hv, hf) == (v, f):
            return False
        other = self.vms[hv]
        if other.state[hf] == P and other.cont[hf] == key:  # re-hash the hint page: unchanged
            self.table[key] = ["shared", 2]
            other.set(hf, S)
            other.c[m.C_SHARED_CONTENT] += 1
            vm.set(f, S)
            vm.c[m.C_SHARED_CONTENT] += 1
            self.free += 1
            vm.c[why] += 1
            return True
        self.stale += 1
        if hint_unmatched:
            self.table[key] = ["hint", v, f]
        else:
            del self.table[key]
        return False

    def scan(self, cand_vm, cand_f):
        return sum(self.share(int(v), int(f), True, m.C_SCAN_SHARED) for v, f in zip(cand_vm, cand_f, strict=True))

    def page_out(self, count, cand, v):
        vm = self.vms[v]
        done = 0
        for f in cand:
            if done >= count:
                break
            f = int(f)
            if self.share(v, f, False, m.C_SHARE_BEFORE_SWAP):
                done += 1
            elif vm.state[f] == P and self.swap > 0:
                vm.set(f, W)
                self.free += 1
                self.swap -= 1
                vm.c[m.C_SWAP_OUT] += 1
                done += 1
        return done

    # -- the guest ---------------------------------------------------------------------------
    def pick(self, v):
        """The frame the guest gives up: a free one (no data: freed, never touched, zeros),
        else the first cold one on the CLOCK (second chance), else -1."""
        vm = self.vms[v]
        n = len(vm.state)
        if vm.c[U] + vm.c[Z] + vm.c[S] > 0:
            for step in range(1, n + 1):
                h = (vm.hands[0] + step) % n
                s = vm.state[h]
                has_no_data = vm.owner[h] == m.FREE or s in (U, Z) or (s == S and vm.cont[h] == 0)
                if s != B and has_no_data:
                    vm.hands[0] = h
                    return h
            vm.hands[0] = (vm.hands[0] + n) % n
        h = vm.hands[1]
        for _ in range(2 * n + 1):
            h = (h + 1) % n
            if vm.state[h] == B:
                continue
            if vm.refbit[h]:
                vm.refbit[h] = 0
                continue
            vm.hands[1] = h
            return h
        vm.hands[1] = h
        return -1

    def inflate(self, v, count):
        vm = self.vms[v]
        done = 0
        for _ in range(count):
            f = self.pick(v)
            if f < 0:
                break
            s = vm.state[f]
            if vm.owner[f] >= 0 and (s == P or (s == S and vm.cont[f] != 0)):
                vm.c[m.C_GUEST_PAGEOUT] += 1
            if s in (P, Z):
                self.free += 1
            elif s == S:
                vm.c[m.C_BALLOON_SHARED] += 1
                if vm.cont[f] != 0:
                    self.release(vm.cont[f])
                    vm.c[m.C_SHARED_CONTENT] -= 1
            vm.owner[f] = m.BALLOON
            vm.refbit[f] = 0
            vm.cont[f] = -1
            vm.set(f, B)
            done += 1
        return done

    def replay(self, v, ts, g, fl, period=0):
        """The touch path with contents (memory docstring): the new content of a frame is
        zeros for a zero-filling write, fresh for any other write, the datum's image on its
        first touch at home, zeros for a first read without an image; a write to a shared frame
        breaks copy-on-write (releasing the shared content); a swapped frame comes back with
        its content."""
        vm = self.vms[v]
        for _t, x, f_ in zip(ts, g, fl, strict=True):
            x, w, z = int(x), bool(f_ & 1), bool(f_ & 2)
            assert self.free > 0  # these tests never run out of memory
            home = vm.owner[x] == x
            if home:
                f = x
            elif vm.alias[x] >= 0 and vm.owner[vm.alias[x]] == x:
                f = vm.alias[x]
            elif vm.owner[x] == m.FREE:
                f = x
                vm.owner[x] = x
            else:
                f = self.pick(v)
                vm.c[m.C_GUEST_FAULT] += 1
                o, s0 = vm.owner[f], vm.state[f]
                if o >= 0 and o != x and (s0 in (P, W, B) or (s0 == S and vm.cont[f] != 0)):
                    vm.c[m.C_GUEST_PAGEOUT] += 1
                vm.owner[f] = x
                vm.alias[x] = f
                w = True
            s = vm.state[f]
            if s == U:
                if z:
                    new = 0
                elif home and vm.image[x] >= 0:
                    new = vm.image[x]
                else:
                    new = self.fresh() if w else 0
                vm.set(f, P if new else Z)
                self.free -= 1
                vm.cont[f] = new
            elif s in (Z, P):
                if z:
                    vm.set(f, Z)
                    vm.cont[f] = 0
                elif w:
                    vm.set(f, P)
                    vm.cont[f] = self.fresh()
            elif s == S and w:
                if vm.cont[f] != 0:
                    self.release(vm.cont[f])
                    vm.c[m.C_SHARED_CONTENT] -= 1
                new = 0 if z else self.fresh()
                vm.set(f, P if new else Z)
                self.free -= 1
                vm.cont[f] = new
                vm.c[m.C_COW] += 1
            elif s == W:
                if z:
                    vm.cont[f] = 0
                elif w:
                    vm.cont[f] = self.fresh()
                vm.set(f, P if vm.cont[f] else Z)
                self.free -= 1
                vm.c[m.C_SWAP_IN] += 1
            vm.refbit[f] = 1
            if vm.sampled[f]:
                vm.sampled[f] = 0
                vm.c[m.C_SAMPLE_HITS] += 1
            if vm.stamp[f] != period:
                vm.stamp[f] = period
                vm.c[m.C_DISTINCT] += 1
            vm.c[m.C_EVENTS] += 1

    def power_off_release(self, v):
        vm = self.vms[v]
        for s, c in zip(vm.state, vm.cont, strict=True):
            if s == S and c != 0:
                self.release(c)
                vm.c[m.C_SHARED_CONTENT] -= 1
