"""Vector loops the native kernels need and numba's loops do not compile well.

**Selection.** Comparing 16 unsigned keys with a value and collecting the answers as 16 bits is one
vector compare on AVX-512 (or two on AVX2), but numba's loop vectoriser turns the
scalar form (``bits |= (key[j] >= low) << j``) into a chain of widening, shifting and
OR-ing, and a count of matches (``ge += key[j] >= v``) into a reduction it cannot
start cheaply for 64 entries. Written as numba intrinsics (LLVM vector IR), the
candidate scan and the final ranking at B=50, n=500, k=20 took 6 against 11.7 µs.

The compare intrinsics read 16 consecutive elements with no bounds check: callers
keep ``start + 16 <= len(arr)``.

**Products.** Both products are sums of a few scaled rows, one output row at a time
(dW's row of a kept column: its entries' rows of X; dX's row of an example: its kept
rows of W). Rows of d_in = 500 are short: numba's loop, 64 floats an iteration, spent
about a tenth of its time in per-row setup (overlap checks between the output and each
source row) and the 52-float tail (a 256-bit loop, then a scalar one). :func:`_add_rows`
is one vector loop with the tail in a single masked operation: dW 31.8 -> 29.9 µs and
dX 26.1 -> 24.6 µs at B=50, n=d_in=500, k=20; on 256-bit vectors rather than 512
(rows that start off a cache line), dW 27.1 and dX 22.3 µs.

numba caches the compiled loops by the source of ``native_jit.py`` alone, so that file
pins this one's hash (``native_jit.SIMD_SOURCE``): edit both together.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16


def _splat(builder, value, vec_t):
    """``value`` in every lane of a vector of type ``vec_t``."""
    one = builder.insert_element(
        ir.Constant(vec_t, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)
    )
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vec_t.count), [0] * vec_t.count)
    return builder.shuffle_vector(one, ir.Constant(vec_t, ir.Undefined), zeros)


def _compare_codegen(op: str, masked: bool):
    """LLVM for ``(arr, start[, mask], value)``: one vector load of 16 keys, the mask
    (if any), one unsigned compare, its 16 answers as the low bits of a uint64."""

    def codegen(context, builder, signature, args):
        dtype = signature.args[0].dtype
        vec_t = ir.VectorType(context.get_value_type(dtype), LANES)

        def splat(i):
            return _splat(builder, context.cast(builder, args[i], signature.args[i], dtype), vec_t)

        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), vec_t.as_pointer())
        keys = builder.load(ptr, align=1)
        if masked:
            keys = builder.and_(keys, splat(2))
        hits = builder.icmp_unsigned(op, keys, splat(len(args) - 1))
        return builder.zext(builder.bitcast(hits, ir.IntType(LANES)), ir.IntType(64))

    return codegen


def _unsigned_array(arr) -> bool:
    return isinstance(arr, types.Array) and isinstance(arr.dtype, types.Integer)


def _compare_bits(op: str):
    """An intrinsic ``f(arr, start, value) -> uint64``: bit i is set where
    ``arr[start + i] <op> value`` (unsigned), for i < 16."""

    @intrinsic
    def compare(typingctx, arr, start, value):
        if _unsigned_array(arr):
            return types.uint64(arr, start, value), _compare_codegen(op, masked=False)
        return None

    return compare


def _masked_compare_bits(op: str):
    """:func:`_compare_bits` of ``arr[start + i] & mask``: ``f(arr, start, mask, value)``."""

    @intrinsic
    def compare(typingctx, arr, start, mask, value):
        if _unsigned_array(arr):
            return types.uint64(arr, start, mask, value), _compare_codegen(op, masked=True)
        return None

    return compare


at_least = _compare_bits(">=")
above = _compare_bits(">")
equal = _compare_bits("==")
masked_at_least = _masked_compare_bits(">=")


@intrinsic
def popcount(typingctx, x):
    """The number of set bits of an unsigned 64-bit integer (one instruction)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(x), codegen


@intrinsic
def pointer(typingctx, address, like):
    """The integer ``address`` as a pointer to ``like``'s element type, for
    ``numba.carray``: the native kernels pass tensors' memory as ``data_ptr()`` (0.2
    µs) rather than as NumPy views (1 µs each)."""
    if not (isinstance(address, types.Integer) and isinstance(like, types.Array)):
        return None
    result = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(result))

    return result(address, like), codegen


def _row(context, builder, arrty, arr, row, elem):
    """Pointer to ``arr[row, 0]`` (a 2-D array whose rows are contiguous)."""
    ary = context.make_array(arrty)(context, builder, arr)
    stride = cgutils.unpack_tuple(builder, ary.strides, 2)[0]
    first = builder.gep(
        builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [builder.mul(row, stride)]
    )
    return builder.bitcast(first, elem.as_pointer())


def _add_rows(size: int):
    """The intrinsic ``f(out, r, src, at, vals, p, first)`` for one ``size``: row ``r``
    of ``out`` becomes Σ_e vals[p + e]·src[at[p + e]] over e < ``size`` (plus its old
    value unless ``first``). ``out`` and ``src`` are 2-D float arrays of one dtype and
    width with contiguous rows; ``at`` and ``vals`` 1-D.

    The loop is on 256-bit vectors: rows start anywhere (d_in = 500 puts three rows in
    four off a 64-byte boundary), and a 512-bit access off the boundary spans two cache
    lines. At B=50, n=d_in=500, k=20 dW took 27.1 µs against 30.2 with 512 bits and dX
    22.3 against 23.4; with rows on the boundary (d_in = 784, or 496 placed so) 512 bits
    were no faster (dW 41.9 against 41.1 µs at d_in = 784), nor at d_in = 4096."""

    @intrinsic
    def add(typingctx, out, r, src, at, vals, p, first):
        arrays = (out, src, at, vals)
        if not all(isinstance(a, types.Array) for a in arrays):
            return None
        if (out.ndim, src.ndim, at.ndim, vals.ndim) != (2, 2, 1, 1):
            return None
        if not (out.dtype == src.dtype == vals.dtype and isinstance(out.dtype, types.Float)):
            return None

        def codegen(context, builder, signature, args):
            out_v, r_v, src_v, at_v, vals_v, p_v, first_v = args
            out_t, _, src_t, at_t, vals_t, _, first_t = signature.args
            elem = context.get_value_type(out_t.dtype)
            lanes = 256 // out_t.dtype.bitwidth
            vec = ir.VectorType(elem, lanes)
            i32, i64 = ir.IntType(32), ir.IntType(64)
            width = builder.extract_value(
                context.make_array(out_t)(context, builder, out_v).shape, 1
            )
            r_v = context.cast(builder, r_v, signature.args[1], types.intp)
            target = _row(context, builder, out_t, out_v, r_v, elem)
            at_a = context.make_array(at_t)(context, builder, at_v)
            vals_a = context.make_array(vals_t)(context, builder, vals_v)
            sources, scales = [], []
            for e in range(size):
                pos = builder.add(p_v, ir.Constant(p_v.type, e))
                row = context.cast(
                    builder, builder.load(builder.gep(at_a.data, [pos])), at_t.dtype, types.intp
                )
                sources.append(_row(context, builder, src_t, src_v, row, elem))
                scales.append(_splat(builder, builder.load(builder.gep(vals_a.data, [pos])), vec))
            suffix = f"v{lanes}f{out_t.dtype.bitwidth}"
            mask_t = ir.VectorType(ir.IntType(1), lanes)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.{suffix}"
            )
            load_masked = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(vec, [vec.as_pointer(), i32, mask_t, vec]),
                f"llvm.masked.load.{suffix}.p0",
            )
            store_masked = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), i32, mask_t]),
                f"llvm.masked.store.{suffix}.p0",
            )
            align = out_t.dtype.bitwidth // 8
            masked_align = ir.Constant(i32, align)
            full = builder.udiv(width, ir.Constant(width.type, lanes))
            tail = builder.urem(width, ir.Constant(width.type, lanes))

            def at(ptr, i):
                return builder.bitcast(
                    builder.gep(ptr, [builder.mul(i, ir.Constant(i64, lanes))]), vec.as_pointer()
                )

            def combine(load, add):
                total = builder.fmul(scales[0], load(sources[0]))
                for e in range(1, size):
                    total = builder.call(fma, [scales[e], load(sources[e]), total])
                return builder.fadd(total, load(target)) if add else total

            def loops(add):
                with cgutils.for_range(builder, full) as loop:
                    total = combine(lambda ptr: builder.load(at(ptr, loop.index), align=align), add)
                    builder.store(total, at(target, loop.index), align=align)
                with builder.if_then(builder.icmp_unsigned("!=", tail, ir.Constant(tail.type, 0))):
                    lane = ir.Constant(ir.VectorType(i64, lanes), list(range(lanes)))
                    mask = builder.icmp_unsigned("<", lane, _splat(builder, tail, lane.type))
                    zero = ir.Constant(vec, [0.0] * lanes)
                    total = combine(
                        lambda ptr: builder.call(
                            load_masked, [at(ptr, full), masked_align, mask, zero]
                        ),
                        add,
                    )
                    builder.call(store_masked, [total, at(target, full), masked_align, mask])

            is_first = context.cast(builder, first_v, first_t, types.boolean)
            with builder.if_else(builder.trunc(is_first, ir.IntType(1))) as (write, accumulate):
                with write:
                    loops(add=False)
                with accumulate:
                    loops(add=True)
            return context.get_dummy_value()

        return types.void(out, r, src, at, vals, p, first), codegen

    return add


add_rows_1 = _add_rows(1)
add_rows_2 = _add_rows(2)
add_rows_3 = _add_rows(3)
add_rows_4 = _add_rows(4)
add_rows_8 = _add_rows(8)


@intrinsic
def group_maxima(typingctx, key, mask, m, out):
    """``out[i]`` = the largest ``key[s·m + i] & mask`` over the whole m-wide slices s of
    ``key`` (at least one), for each i < m (a multiple of 16): the selection's strided
    group maxima, 16 lanes at a time, each kept in a register across the slices (1.6
    against 3.3 µs at B=50, n=500, m=64). The caller folds in the last, partial slice."""
    if not (_unsigned_array(key) and _unsigned_array(out)):
        return None

    def codegen(context, builder, signature, args):
        key_v, mask_v, m_v, out_v = args
        key_t, mask_t, m_t, out_t = signature.args
        dtype = key_t.dtype
        vec_t = ir.VectorType(context.get_value_type(dtype), LANES)
        mask = _splat(builder, context.cast(builder, mask_v, mask_t, dtype), vec_t)
        key_a = context.make_array(key_t)(context, builder, key_v)
        out_a = context.make_array(out_t)(context, builder, out_v)
        n = builder.extract_value(key_a.shape, 0)
        m = context.cast(builder, m_v, m_t, types.intp)
        slices = builder.udiv(n, m)
        umax = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vec_t, [vec_t, vec_t]),
            f"llvm.umax.v{LANES}i{dtype.bitwidth}",
        )
        best = cgutils.alloca_once(builder, vec_t)

        def load(offset):
            ptr = builder.bitcast(builder.gep(key_a.data, [offset]), vec_t.as_pointer())
            return builder.and_(builder.load(ptr, align=1), mask)

        blocks = builder.udiv(m, ir.Constant(m.type, LANES))
        with cgutils.for_range(builder, blocks) as block:
            lane0 = builder.mul(block.index, ir.Constant(m.type, LANES))
            builder.store(load(lane0), best)
            with cgutils.for_range(builder, builder.sub(slices, ir.Constant(m.type, 1))) as s:
                at = builder.add(
                    builder.mul(builder.add(s.index, ir.Constant(m.type, 1)), m), lane0
                )
                builder.store(builder.call(umax, [builder.load(best), load(at)]), best)
            dest = builder.bitcast(builder.gep(out_a.data, [lane0]), vec_t.as_pointer())
            builder.store(builder.load(best), dest, align=1)
        return context.get_dummy_value()

    return types.void(key, mask, m, out), codegen
