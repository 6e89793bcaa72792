// JsonlReader: line numbers across blank lines, CRLF, BOM, missing final newline, long lines.
#include "engine/data/jsonl_reader.h"

#include <gtest/gtest.h>

#include "tests/engine/data/data_test_util.h"

namespace sfd {
namespace {

TEST(JsonlReaderTest, LinesAndNumbers) {
  const std::string path = testing_util::WriteTempFile(
      "reader.jsonl", "\xEF\xBB\xBF{\"a\":1}\r\n\n   \n{\"b\":2}\n\t\r\n{\"c\":3}");
  auto r = JsonlReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string line;
  int64_t no = 0;
  std::vector<std::pair<std::string, int64_t>> got;
  while (true) {
    auto more = (*r)->Next(&line, &no);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    got.emplace_back(line, no);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], std::make_pair(std::string("{\"a\":1}"), int64_t{1}));
  EXPECT_EQ(got[1], std::make_pair(std::string("{\"b\":2}"), int64_t{4}));
  EXPECT_EQ(got[2], std::make_pair(std::string("{\"c\":3}"), int64_t{6}));
}

TEST(JsonlReaderTest, MissingFileAndDirectory) {
  auto r = JsonlReader::Open("/nonexistent/data.jsonl");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/data.jsonl"), std::string::npos);
  EXPECT_FALSE(JsonlReader::Open(::testing::TempDir()).ok());
}

TEST(JsonlReaderTest, OverlongLineIsAnErrorWithLineNumber) {
  std::string big = "{}\n" + std::string(JsonlReader::kMaxLineBytes + 10, 'x') + "\n";
  const std::string path = testing_util::WriteTempFile("long.jsonl", big);
  auto r = JsonlReader::Open(path);
  ASSERT_TRUE(r.ok());
  std::string line;
  int64_t no = 0;
  ASSERT_TRUE(*(*r)->Next(&line, &no));
  auto second = (*r)->Next(&line, &no);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("long.jsonl:2:"), std::string::npos) << second.status();
}

}  // namespace
}  // namespace sfd
