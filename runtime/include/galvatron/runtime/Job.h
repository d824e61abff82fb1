//===- Job.h - what every rank of a galvatron-run job shares ----*- C++ -*-===//
//
// The job (plan, rank, communicator), how it ends on an error, and the
// helpers the trainer and the forward driver share: plan tensors as runtime
// shapes and names, and gathering the ranks' shards into whole tensors on
// rank 0.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_JOB_H
#define GALVATRON_RUNTIME_JOB_H

#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Tensor.h"
#include "galvatron/runtime/plan_generated.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace galvatron::rt {

class Backend;
class Communicator;

/// What every rank of the job shares.
struct Job {
  const plan::Plan *plan = nullptr;
  /// The plan rank this process runs, and its program.
  int rank = 0;
  const plan::RankProgram *program = nullptr;
  /// Processes in the job: 1 without mpirun.
  int worldSize = 1;
  Communicator *comm = nullptr;
  /// Where the rank's program runs (--backend).
  Backend *backend = nullptr;
  /// --trace DIR, and the job's clock origin (rank 0's start) in µs.
  std::string traceDir;
  int64_t traceOriginUs = 0;
  /// Steps traced (--trace-steps): a trace holds every instruction, so a
  /// long run keeps only its first steps.
  int traceSteps = 20;
  /// Rank 0 prints and writes what the job computed.
  bool lead() const { return worldSize == 1 || rank == 0; }
};

/// "galvatron-run: error: MESSAGE" on stderr in one write, so that the lines
/// of several ranks sharing a terminal do not interleave.
void printError(const std::string &message);

/// An error on this rank alone: the other ranks may be waiting for it in a
/// collective, so the whole job ends (exit status 1).
[[noreturn]] void fatal(const std::string &message);

/// An error every rank meets alike (arguments, the plan, the job's size)
/// before any communication: each says so and leaves cleanly.
[[noreturn]] void fatalEverywhere(const std::string &message, int code = 1);

/// Test hooks read from the environment: VARIABLE=<rank>:<step> matches
/// this rank and step.
bool testHook(const char *variable, int rank, int step);

/// The shape of the whole tensor: the shard's full shape, else its own.
Shape fullShapeOf(const plan::Tensor &tensor);
/// How the executor names a tensor among a program's inputs and outputs.
std::string tensorName(const plan::RankProgram &program, int32_t index);
/// The tensor among `indices` named `name`, or null.
const plan::Tensor *findNamed(const plan::RankProgram &program,
                              const flatbuffers::Vector<int32_t> *indices,
                              const std::string &name);

/// The token ids: the first Data input of the lowest rank that has one
/// (the pipeline's first stage), or null.
const plan::Tensor *tokenInput(const plan::Plan &plan);

/// Ends the job when a token id in `ids` (read from
/// `file`) lies outside the plan's vocabulary [0, vocab_size), naming the
/// file, the position and the value; a plan without a vocabulary checks
/// nothing.
void checkTokenIds(const plan::Plan &plan, const Tensor &ids,
                   const std::string &file);

/// "NAME=file" names its binding; a bare "file" takes the `index`-th of
/// `names` (the plan's inputs or outputs in order), or "" past their end.
std::pair<std::string, std::string>
splitSpec(const std::string &spec, size_t index,
          const std::vector<std::string> &names);

/// Microseconds since the Unix epoch (the trace clock).
int64_t nowUs();

/// `path` for rank 0; `path` with ".rank<r>" before its extension for rank r
/// (metrics.jsonl, metrics.rank1.jsonl).
std::string rankPath(const std::string &path, int rank);

/// This rank's piece of a whole tensor (the whole itself when `tensor` has
/// no shard); ends the job naming `what` when it cannot be cut.
Tensor pieceOf(const plan::Tensor &tensor, const Tensor &whole,
               const std::string &what);

/// Which tensor of a rank's program holds a name, or null.
using TensorFinder = std::function<const plan::Tensor *(
    const plan::RankProgram &, const std::string &)>;

/// Whole tensors of `names`, on rank 0, from the pieces the ranks hold:
/// `find` says which tensor of a rank's program holds a name (and so its
/// shard), `mine` holds this rank's pieces. A piece that several ranks hold
/// (data parallelism) travels once, from the lowest of them. Every rank
/// calls this with the same names; the others return nothing.
std::map<std::string, Tensor>
consolidate(const Job &job, const std::vector<std::string> &names,
            const TensorFinder &find, const std::map<std::string, Tensor> &mine,
            const std::string &what);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_JOB_H
