//===- Job.cpp - what every rank of a galvatron-run job shares ------------===//

#include "galvatron/runtime/Job.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Shard.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace galvatron::rt {

void printError(const std::string &message) {
  std::string line = "galvatron-run: error: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void fatal(const std::string &message) {
  printError(message);
  if (mpi::active() && mpi::worldSize() > 1)
    mpi::abortJob(1);
  std::exit(1);
}

void fatalEverywhere(const std::string &message, int code) {
  printError(message);
  mpi::finalize();
  std::exit(code);
}

bool testHook(const char *variable, int rank, int step) {
  const char *spec = std::getenv(variable);
  if (!spec)
    return false;
  // "RANK:STEP", both whole numbers.
  char *end = nullptr;
  long r = std::strtol(spec, &end, 10);
  if (end == spec || *end != ':')
    return false;
  const char *second = end + 1;
  long s = std::strtol(second, &end, 10);
  return end != second && *end == '\0' && r == rank && s == step;
}

Shape fullShapeOf(const plan::Tensor &tensor) {
  return tensor.shard() ? shardFullShape(*tensor.shard()) : shapeOf(tensor);
}

std::string tensorName(const plan::RankProgram &program, int32_t index) {
  const plan::Tensor &t = *program.tensors()->Get(index);
  return t.name() ? t.name()->str() : std::to_string(index);
}

const plan::Tensor *findNamed(const plan::RankProgram &program,
                              const flatbuffers::Vector<int32_t> *indices,
                              const std::string &name) {
  if (indices)
    for (int32_t index : *indices)
      if (tensorName(program, index) == name)
        return program.tensors()->Get(index);
  return nullptr;
}

const plan::Tensor *tokenInput(const plan::Plan &plan) {
  for (int r = 0; r < plan.world_size(); ++r) {
    const plan::RankProgram *program = findRankProgram(plan, r);
    if (program && program->inputs())
      for (int32_t index : *program->inputs()) {
        const plan::Tensor *t = program->tensors()->Get(index);
        if (t->role() == plan::Role::Data)
          return t;
      }
  }
  return nullptr;
}

void checkTokenIds(const plan::Plan &plan, const Tensor &ids,
                   const std::string &file) {
  int64_t vocab = plan.vocab_size();
  if (vocab <= 0)
    return;
  if (ids.dtype != DType::I64 && ids.dtype != DType::I32)
    fatal(file + ": token ids must be integers, not " + dtypeName(ids.dtype));
  for (int64_t i = 0; i < ids.size(); ++i) {
    int64_t v = ids.dtype == DType::I64
                    ? ids.i64()[i]
                    : reinterpret_cast<const int32_t *>(ids.bytes.data())[i];
    // An id past the vocabulary would read outside the embedding table, or
    // (vocabulary-parallel) silently embed as zeros.
    if (v < 0 || v >= vocab)
      fatal(file + ": token " + std::to_string(v) + " at position " +
            std::to_string(i) + " is outside the vocabulary [0, " +
            std::to_string(vocab) + ")");
  }
}

std::pair<std::string, std::string>
splitSpec(const std::string &spec, size_t index,
          const std::vector<std::string> &names) {
  size_t eq = spec.find('=');
  if (eq != std::string::npos)
    return {spec.substr(0, eq), spec.substr(eq + 1)};
  return {index < names.size() ? names[index] : "", spec};
}

int64_t nowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string rankPath(const std::string &path, int rank) {
  if (rank == 0)
    return path;
  size_t slash = path.find_last_of('/');
  size_t base = slash == std::string::npos ? 0 : slash + 1;
  size_t dot = path.find_last_of('.');
  std::string tag = ".rank" + std::to_string(rank);
  if (dot == std::string::npos || dot <= base)
    return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
}

Tensor pieceOf(const plan::Tensor &tensor, const Tensor &whole,
               const std::string &what) {
  if (!tensor.shard())
    return whole;
  Tensor piece;
  std::string error;
  if (!cutShard(whole, *tensor.shard(), piece, error))
    fatal(what + ": " + error);
  return piece;
}

namespace {

/// Who holds a piece of one name: `held[r]` is rank r's tensor (or null),
/// `senders` the ranks whose pieces differ, lowest first.
struct Holders {
  std::vector<const plan::Tensor *> held;
  std::vector<int> senders;
};

Holders holdersOf(const Job &job, const TensorFinder &find,
                  const std::string &name) {
  Holders h;
  h.held.resize(job.worldSize);
  for (int r = 0; r < job.worldSize; ++r) {
    h.held[r] = find(*findRankProgram(*job.plan, r), name);
    if (!h.held[r])
      continue;
    bool repeated = false;
    for (int q : h.senders)
      repeated |= sameShard(h.held[q]->shard(), h.held[r]->shard());
    if (!repeated)
      h.senders.push_back(r);
  }
  return h;
}

const Tensor &ownPiece(const Job &job,
                       const std::map<std::string, Tensor> &mine,
                       const std::string &name, const std::string &what) {
  auto it = mine.find(name);
  if (it == mine.end())
    fatal("rank " + std::to_string(job.rank) + " has no " + what + " tensor '" +
          name + "' to send");
  return it->second;
}

/// Rank 0's half: receives every sender's piece and places it.
Tensor gatherWhole(const Job &job, const Holders &h,
                   const std::map<std::string, Tensor> &mine,
                   const std::string &name, const std::string &what) {
  std::string error;
  const plan::Tensor &first = *h.held[h.senders[0]];
  DType dtype = toDType(first.dtype());
  Tensor out = Tensor::zeros(dtype, fullShapeOf(first));
  // Which elements some rank supplied: a plan whose shards leave a hole
  // must not write a checkpoint with zeros in it.
  Tensor covered = Tensor::zeros(DType::Bool, out.shape);
  for (int r : h.senders) {
    Tensor piece;
    if (r == 0) {
      piece = ownPiece(job, mine, name, what);
    } else {
      piece = Tensor(dtype, shapeOf(*h.held[r]));
      if (!job.comm->worldRecv(r, piece.bytes.data(), piece.bytes.size(),
                               "receiving " + what + " tensor '" + name +
                                   "' from rank " + std::to_string(r),
                               error))
        fatal(error);
    }
    Tensor ones(DType::Bool, piece.shape);
    std::fill(ones.bytes.begin(), ones.bytes.end(), 1);
    if (!h.held[r]->shard()) {
      if (piece.shape != out.shape)
        fatal(what + " '" + name + "' of rank " + std::to_string(r) + " is " +
              shapeString(piece.shape) + ", not " + shapeString(out.shape));
      out = std::move(piece);
      covered = std::move(ones);
    } else if (!placeShard(piece, *h.held[r]->shard(), out, error) ||
               !placeShard(ones, *h.held[r]->shard(), covered, error)) {
      fatal(what + " '" + name + "' of rank " + std::to_string(r) + ": " +
            error);
    }
  }
  if (std::find(covered.bytes.begin(), covered.bytes.end(), 0) !=
      covered.bytes.end())
    fatal(what + " '" + name + "': the ranks' shards do not cover all of " +
          shapeString(out.shape));
  return out;
}

} // namespace

std::map<std::string, Tensor>
consolidate(const Job &job, const std::vector<std::string> &names,
            const TensorFinder &find, const std::map<std::string, Tensor> &mine,
            const std::string &what) {
  if (job.worldSize == 1)
    return mine;
  std::map<std::string, Tensor> whole;
  std::string error;
  for (const std::string &name : names) {
    Holders h = holdersOf(job, find, name);
    if (h.senders.empty())
      continue;
    if (job.rank == 0) {
      whole[name] = gatherWhole(job, h, mine, name, what);
      continue;
    }
    if (std::find(h.senders.begin(), h.senders.end(), job.rank) ==
        h.senders.end())
      continue;
    const Tensor &t = ownPiece(job, mine, name, what);
    if (!job.comm->worldSend(
            0, t.bytes.data(), t.bytes.size(),
            "sending " + what + " tensor '" + name + "' to rank 0", error))
      fatal(error);
  }
  return whole;
}

} // namespace galvatron::rt
