//===- Shard.h - a rank's piece of a full tensor ----------------*- C++ -*-===//
//
// plan.fbs's Shard says how a rank's tensor is cut from the full tensor of
// the same name: dimension cuts in order (each keeps piece `index` of every
// one of `blocks` blocks along `axis`), then an optional ZeRO flat cut
// (flatten, zero-pad to a multiple of flat_parts, keep piece flat_index).
// cutShard applies it, placeShard undoes it into a full tensor.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_SHARD_H
#define GALVATRON_RUNTIME_SHARD_H

#include "galvatron/runtime/Tensor.h"
#include "galvatron/runtime/plan_generated.h"

#include <string>

namespace galvatron::rt {

/// The shard's full shape.
Shape shardFullShape(const plan::Shard &shard);

/// The shape a rank holds: `fullShape` after every cut. False with `error`
/// when an axis is out of range or a cut does not divide its dimension.
bool shardShape(const plan::Shard &shard, Shape &shape, std::string &error);

/// The rank's piece of `full`, whose shape must be shard.full_shape.
bool cutShard(const Tensor &full, const plan::Shard &shard, Tensor &piece,
              std::string &error);

/// Writes `piece` (shaped as cutShard's result) into its place in `full`
/// (shaped shard.full_shape, same dtype), leaving the rest of `full` as it
/// is; the zero padding of a flat cut is dropped.
bool placeShard(const Tensor &piece, const plan::Shard &shard, Tensor &full,
                std::string &error);

/// Whether two shards cut the same piece (absent shards are the whole).
bool sameShard(const plan::Shard *a, const plan::Shard *b);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_SHARD_H
