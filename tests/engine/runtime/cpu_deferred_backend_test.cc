// The CPU backend with deferred copies (runtime/cpu_deferred_backend.cc, what
// EngineSpec::cpu_deferred_copies selects): a copy on a non-compute stream is not visible until
// something waits for it, copies on one stream run in order, a stream's wait marker runs the
// stream it waits for first, and Backend::Synchronize, Use and Event::Query run what they
// must. The trainer-level check that the executor's waits are complete is
// tests/engine/trainer/deferred_copies_test.cc.
#include <memory>
#include <thread>
#include <vector>

#include "engine/runtime/backend.h"
#include "engine/trainer/trainer_spec.h"
#include "gtest/gtest.h"

namespace sfd {
namespace {

std::unique_ptr<Backend> Deferred() {
  auto b = CreateCpuDeferredBackend();
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? std::move(*b) : nullptr;
}

at::Tensor Filled(int64_t n, float v) { return at::full({n}, v, at::TensorOptions().dtype(at::kFloat)); }

// All elements of `t` equal `v`.
bool Holds(const at::Tensor& t, float v) { return at::equal(t, at::full_like(t, v)); }

TEST(CpuDeferredBackendTest, CreateSelectsItOnTheCpuTierOnly) {
  EngineSpec spec;
  spec.device = DeviceKind::kCpu;
  spec.cpu_deferred_copies = true;
  auto b = Backend::Create(spec);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cpu (deferred copies)");
  EXPECT_FALSE((*b)->is_cuda());
  spec.cpu_deferred_copies = false;
  auto plain = Backend::Create(spec);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->name(), "cpu");
}

TEST(CpuDeferredBackendTest, CopyIsInvisibleUntilWaitedFor) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  at::Tensor dst = Filled(8, 0), src = Filled(8, 1);
  be->Copy(dst, src, StreamId::kH2D);
  std::unique_ptr<Event> copied = be->NewEvent();
  copied->Record(StreamId::kH2D);
  EXPECT_TRUE(Holds(dst, 0)) << "a copy on kH2D ran before anything waited for it";
  // A compute-stream copy runs at once.
  at::Tensor c = Filled(8, 0);
  be->Copy(c, src, StreamId::kCompute);
  EXPECT_TRUE(Holds(c, 1));
  // An event recorded before the copy does not cover it.
  at::Tensor dst2 = Filled(8, 0);
  std::unique_ptr<Event> before = be->NewEvent();
  before->Record(StreamId::kH2D);
  be->Copy(dst2, src, StreamId::kH2D);
  be->StreamWait(StreamId::kCompute, *copied);
  EXPECT_TRUE(Holds(dst, 1));
  EXPECT_TRUE(Holds(dst2, 0)) << "waiting for an event ran work queued after it";
  // The queue holds the source: the caller may drop its handle.
  src = at::Tensor();
  be->StreamWait(StreamId::kCompute, *before);
  EXPECT_TRUE(Holds(dst2, 0));
  be->Synchronize();
  EXPECT_TRUE(Holds(dst2, 1));
}

TEST(CpuDeferredBackendTest, CopiesOnOneStreamRunInOrder) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  at::Tensor dst = Filled(8, 0);
  be->Copy(dst, Filled(8, 1), StreamId::kD2H);
  be->Copy(dst, Filled(8, 2), StreamId::kD2H);
  std::unique_ptr<Event> e = be->NewEvent();
  e->Record(StreamId::kD2H);
  EXPECT_TRUE(Holds(dst, 0));
  e->Synchronize();
  EXPECT_TRUE(Holds(dst, 2));
  // A source changed after its copy was issued, before it ran: the copy reads the new values
  // (what a device would read from pinned memory the host rewrote too early).
  at::Tensor src = Filled(8, 3);
  be->Copy(dst, src, StreamId::kD2H);
  src.fill_(4);
  e->Record(StreamId::kD2H);  // re-recording moves the event
  e->Synchronize();
  EXPECT_TRUE(Holds(dst, 4));
}

TEST(CpuDeferredBackendTest, WaitMarkerRunsTheOtherStreamFirst) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  at::Tensor host_a = Filled(8, 7), dev_a = Filled(8, 0), host_b = Filled(8, 0);
  be->Copy(dev_a, host_a, StreamId::kH2D);
  std::unique_ptr<Event> ea = be->NewEvent();
  ea->Record(StreamId::kH2D);
  // Queued on kH2D after ea: the marker must not run it.
  at::Tensor late = Filled(8, 0);
  be->Copy(late, host_a, StreamId::kH2D);
  be->StreamWait(StreamId::kD2H, *ea);
  EXPECT_TRUE(Holds(dev_a, 0)) << "a wait marker ran before its stream reached it";
  be->Copy(host_b, dev_a, StreamId::kD2H);
  std::unique_ptr<Event> eb = be->NewEvent();
  eb->Record(StreamId::kD2H);
  EXPECT_TRUE(Holds(host_b, 0));
  eb->Synchronize();
  EXPECT_TRUE(Holds(host_b, 7)) << "B ran before the copy it waited for";
  EXPECT_TRUE(Holds(late, 0));
  // Without the wait, B reads A's destination before A has run.
  at::Tensor dev_c = Filled(8, 0), host_c = Filled(8, 0);
  be->Copy(dev_c, Filled(8, 9), StreamId::kH2D);
  be->Copy(host_c, dev_c, StreamId::kD2H);
  eb->Record(StreamId::kD2H);
  eb->Synchronize();
  EXPECT_TRUE(Holds(host_c, 0));
  // Chains across three streams: kStateH2D waits for kD2H, which waits for kH2D.
  at::Tensor x = Filled(8, 0), y = Filled(8, 0), z = Filled(8, 0);
  std::unique_ptr<Event> h = be->NewEvent(), d = be->NewEvent(), s = be->NewEvent();
  be->Copy(x, Filled(8, 5), StreamId::kH2D);
  h->Record(StreamId::kH2D);
  be->StreamWait(StreamId::kD2H, *h);
  be->Copy(y, x, StreamId::kD2H);
  d->Record(StreamId::kD2H);
  be->StreamWait(StreamId::kStateH2D, *d);
  be->Copy(z, y, StreamId::kStateH2D);
  s->Record(StreamId::kStateH2D);
  be->StreamWait(StreamId::kCompute, *s);
  EXPECT_TRUE(Holds(z, 5));
}

TEST(CpuDeferredBackendTest, SynchronizeRunsEveryQueue) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  std::vector<at::Tensor> dst;
  const StreamId streams[] = {StreamId::kH2D, StreamId::kD2H, StreamId::kStateH2D};
  for (int i = 0; i < 3; ++i) {
    dst.push_back(Filled(8, 0));
    be->Copy(dst.back(), Filled(8, static_cast<float>(i + 1)), streams[i]);
  }
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Holds(dst[i], 0)) << i;
  be->Synchronize();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Holds(dst[i], static_cast<float>(i + 1))) << i;
}

TEST(CpuDeferredBackendTest, UseRunsTheStreamsQueueFirst) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  at::Tensor d2h = Filled(8, 0), h2d = Filled(8, 0);
  be->Copy(d2h, Filled(8, 3), StreamId::kD2H);
  be->Copy(h2d, Filled(8, 4), StreamId::kH2D);
  {
    std::unique_ptr<StreamScope> scope = be->Use(StreamId::kD2H);
    EXPECT_TRUE(Holds(d2h, 3));
    EXPECT_TRUE(Holds(h2d, 0)) << "Use(kD2H) ran another stream's queue";
  }
  {
    std::unique_ptr<StreamScope> scope = be->Use(StreamId::kCompute);
    EXPECT_TRUE(Holds(h2d, 0));
  }
}

TEST(CpuDeferredBackendTest, QueryRunsTheEventsWorkAndIsTrue) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  at::Tensor dst = Filled(8, 0);
  std::unique_ptr<Event> never = be->NewEvent();
  EXPECT_TRUE(never->Query());  // an event never recorded is complete
  be->Copy(dst, Filled(8, 6), StreamId::kStateH2D);
  std::unique_ptr<Event> e = be->NewEvent();
  e->Record(StreamId::kStateH2D);
  EXPECT_TRUE(Holds(dst, 0));
  EXPECT_TRUE(e->Query());
  EXPECT_TRUE(Holds(dst, 6));
}

// Several host threads issue copies and waits (stager, drain, optimizer threads): each thread's
// chain H2D -> D2H -> host lands whole, whichever thread ends up running the copies.
TEST(CpuDeferredBackendTest, ThreadsIssuingCopiesAndWaits) {
  auto be = Deferred();
  ASSERT_TRUE(be);
  constexpr int kThreads = 4, kRounds = 200;
  std::vector<std::thread> threads;
  std::vector<int> bad(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Event> up = be->NewEvent(), down = be->NewEvent();
      for (int r = 0; r < kRounds; ++r) {
        const float v = static_cast<float>(t * kRounds + r);
        at::Tensor src = Filled(64, v), dev = Filled(64, -1), out = Filled(64, -1);
        be->Copy(dev, src, StreamId::kH2D);
        up->Record(StreamId::kH2D);
        be->StreamWait(StreamId::kD2H, *up);
        be->Copy(out, dev, StreamId::kD2H);
        down->Record(StreamId::kD2H);
        if (r % 2 == 0) {
          down->Synchronize();
        } else {
          EXPECT_TRUE(down->Query());
        }
        if (!Holds(out, v)) ++bad[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace sfd
