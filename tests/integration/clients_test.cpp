// Real POP3 clients from Debian (fetchmail, getmail6, mpop, curl, Python's poplib) through the
// popbridge binary to a private Dovecot. Each client delivers into its own maildir or files; the
// delivered bytes are compared with what IMAP serves, after undoing exactly the changes each client
// is documented to make (CRLF to LF, a Received/Return-Path header on top). Results per client are
// summarised in tests/integration/COMPATIBILITY.md.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/real_clients.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

constexpr std::size_t kBigMessageBytes = 20 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Mailboxes

// At least 200 messages: every edge case of messages.h, text messages of many sizes, MIME
// messages with attachments up to 1 MB, and one 20 MB message.
std::vector<std::string> fullMailbox() {
  std::vector<std::string> messages;
  for (const auto& named : edgeCaseMessages()) messages.push_back(named.bytes);
  static constexpr std::size_t kTextSizes[] = {1, 2, 57, 200, 999, 4096, 20000, 65537};
  for (int i = 0; i < 176; ++i) {
    messages.push_back(simpleMessage(100 + i, kTextSizes[i % std::size(kTextSizes)]));
  }
  static constexpr std::size_t kAttachmentSizes[] = {0, 1, 100, 4000, 60000, 300000, 1000000};
  for (std::size_t size : kAttachmentSizes) messages.push_back(mimeAttachmentMessage(size));
  for (int i = 0; i < 3; ++i) {
    messages.push_back(dotLinesMessage());
    messages.push_back(bareLfMessage());
    messages.push_back(eightBitMessage());
  }
  messages.push_back(longLineMessage(20000));
  messages.push_back(bigMessage(kBigMessageBytes));
  return messages;
}

std::vector<std::string> smallMailbox() {
  std::vector<std::string> messages;
  for (const auto& named : edgeCaseMessages()) messages.push_back(named.bytes);
  messages.push_back(simpleMessage(50, 1));
  messages.push_back(mimeAttachmentMessage(200000));
  messages.push_back(bigMessage(300000));
  return messages;
}

// ---------------------------------------------------------------------------------------------
// Comparing what a client delivered with what IMAP serves

std::string crlfToLf(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out += text[i];
  }
  return out;
}

// Where the first line longer than `limit` (without its line end) starts, or npos.
std::size_t firstLineOver(const std::string& text, std::size_t limit) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::size_t length = end - start;
    if (length > 0 && text[end - 1] == '\r') --length;
    if (length > limit) return start;
    start = end + 1;
  }
  return std::string::npos;
}

// POP3 ends every message with a line end (RFC 1939 needs it before the terminator), so a message
// stored without one arrives with CRLF added; then the client's own line-end convention applies.
std::string expectedDelivery(const std::string& imapBody, const DeliveryRules& rules) {
  std::string expected = imapBody;
  if (expected.empty() || expected.back() != '\n') expected += "\r\n";
  return rules.lfLineEnds ? crlfToLf(expected) : expected;
}

bool startsWithFieldName(const std::string& text, std::size_t pos, const std::string& name) {
  if (text.size() < pos + name.size() + 1 || text[pos + name.size()] != ':') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[pos + i])) !=
        std::tolower(static_cast<unsigned char>(name[i]))) {
      return false;
    }
  }
  return true;
}

// Removes the named fields (with their folded continuation lines) from the top of the message
// only; the same names further down belong to the original message and stay.
std::string stripAddedHeaders(const std::string& message, const std::vector<std::string>& names) {
  std::size_t pos = 0;
  for (;;) {
    bool matched = false;
    for (const auto& name : names) {
      if (startsWithFieldName(message, pos, name)) matched = true;
    }
    if (!matched) break;
    do {
      const std::size_t eol = message.find('\n', pos);
      pos = eol == std::string::npos ? message.size() : eol + 1;
    } while (pos < message.size() && (message[pos] == ' ' || message[pos] == '\t'));
  }
  return message.substr(pos);
}

std::string messageIdOf(const std::string& message) {
  const std::size_t at = message.find("Message-ID: ");
  if (at == std::string::npos) return "(no Message-ID)";
  const std::size_t end = message.find_first_of("\r\n", at);
  return message.substr(at + 12, end - at - 12);
}

std::string firstDifference(const std::string& got, const std::string& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto excerpt = [&](const std::string& s) {
    std::string part = s.substr(i < 40 ? 0 : i - 40, 80);
    std::string shown;
    for (char c : part) {
      if (c == '\r') {
        shown += "\\r";
      } else if (c == '\n') {
        shown += "\\n";
      } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
        shown += hex;
      } else {
        shown += c;
      }
    }
    return shown;
  };
  return "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size()) +
         ", first difference at byte " + std::to_string(i) + ":\n  got:  " + excerpt(got) +
         "\n  want: " + excerpt(want);
}

// Every expected message is delivered exactly once, byte for byte after the rules; nothing else
// is delivered; listed sizes (when known) equal IMAP's.
void expectSameMessages(const std::vector<Delivered>& delivered,
                        const std::vector<std::string>& imapBodies, const DeliveryRules& rules,
                        const std::string& what) {
  std::multimap<std::string, std::size_t> pending;  // expected bytes -> index in imapBodies
  for (std::size_t i = 0; i < imapBodies.size(); ++i) {
    pending.emplace(expectedDelivery(imapBodies[i], rules), i);
  }
  std::size_t matched = 0;
  for (const auto& message : delivered) {
    const std::string got = stripAddedHeaders(message.bytes, rules.addedHeaders);
    auto it = pending.find(got);
    if (it == pending.end() && rules.mangledLinesOver) {
      for (auto candidate = pending.begin(); candidate != pending.end(); ++candidate) {
        const std::size_t cut = firstLineOver(candidate->first, rules.mangledLinesOver);
        if (cut != std::string::npos && got.compare(0, cut, candidate->first, 0, cut) == 0) {
          it = candidate;
          break;
        }
      }
    }
    if (it != pending.end()) {
      if (message.listedSize >= 0) {
        EXPECT_EQ(static_cast<std::size_t>(message.listedSize), imapBodies[it->second].size())
            << what << ": LIST size of " << message.file;
      }
      pending.erase(it);
      ++matched;
      continue;
    }
    // Not expected (or delivered twice): show how it differs from a message with its Message-ID.
    const std::string id = messageIdOf(got);
    std::string closest = "no expected message has this Message-ID (duplicate or foreign)";
    const std::string* best = nullptr;
    for (const auto& [bytes, index] : pending) {
      if (messageIdOf(bytes) != id) continue;
      auto distance = [&](const std::string& s) {
        return s.size() > got.size() ? s.size() - got.size() : got.size() - s.size();
      };
      if (!best || distance(bytes) < distance(*best)) best = &bytes;
    }
    if (best) closest = firstDifference(got, *best);
    ADD_FAILURE() << what << ": unexpected or changed message " << message.file << " " << id << "\n"
                  << closest;
  }
  for (const auto& [bytes, index] : pending) {
    ADD_FAILURE() << what << ": message " << index + 1 << " " << messageIdOf(bytes) << " ("
                  << imapBodies[index].size() << " bytes) was not delivered";
  }
  EXPECT_EQ(matched, imapBodies.size()) << what;
  EXPECT_EQ(delivered.size(), imapBodies.size()) << what;
}

// ---------------------------------------------------------------------------------------------
// Fixture

class ClientTestBase : public ::testing::Test {
 protected:
  void seed(const std::vector<std::string>& messages) {
    dovecot_.seedMaildir("alice", messages);
    ImapTestClient imap = imapSession();
    uids_ = imap.uids();
    ASSERT_EQ(uids_.size(), messages.size());
    for (auto uid : uids_) bodies_.push_back(imap.body(uid));
  }

  ImapTestClient imapSession() {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", dovecot_.user("alice").password);
    imap.select();
    return imap;
  }

  std::vector<std::uint32_t> search(const std::string& criteria) {
    std::vector<std::uint32_t> result = imapSession().uids(criteria);
    std::sort(result.begin(), result.end());
    return result;
  }

  std::unique_ptr<PopbridgeProcess> startProxy(Transport transport, const std::string& onDelete) {
    PopbridgeProcess::Options options;
    options.listeners[0].tls = transport == Transport::kPlain  ? "none"
                               : transport == Transport::kStls ? "starttls"
                                                               : "implicit";
    // Only the plain listener accepts cleartext logins, so a client that skipped STLS fails.
    options.listeners[0].allowPlaintextAuth = transport == Transport::kPlain;
    options.onDelete = onDelete;
    options.logLevel = "info";
    return std::make_unique<PopbridgeProcess>(dovecot_, options);
  }

  Account account(const PopbridgeProcess& proxy, Transport transport) {
    return {proxy.port(), transport, dovecot_.pki().caCert, "alice",
            dovecot_.user("alice").password};
  }

  DovecotFixture dovecot_;
  std::vector<std::uint32_t> uids_;
  std::vector<std::string> bodies_;
};

// ---------------------------------------------------------------------------------------------
// Keep mode, twice: everything arrives intact, then nothing is new (stable UIDLs), and the
// mailbox is untouched (no \Deleted, no \Seen).

struct DownloadCase {
  std::string client;
  Transport transport;
  bool full;  // the 200+ message mailbox with the 20 MB message, else the small one
};

void PrintTo(const DownloadCase& c, std::ostream* out) {
  *out << c.client << " over " << transportName(c.transport)
       << (c.full ? ", full mailbox" : ", small mailbox");
}

class ClientDownloadTest : public ClientTestBase,
                           public ::testing::WithParamInterface<DownloadCase> {};

TEST_P(ClientDownloadTest, KeepModeTwice) {
  const DownloadCase& c = GetParam();
  seed(c.full ? fullMailbox() : smallMailbox());
  auto proxy = startProxy(c.transport, "expunge");
  auto client = makeClient(c.client);
  const Account target = account(*proxy, c.transport);

  std::vector<Delivered> first;
  ASSERT_NO_THROW(first = client->fetch(target, {Mode::kKeep})) << proxy->log();
  expectSameMessages(first, bodies_, client->rules(), c.client + " first run");
  if (HasFailure()) std::cerr << client->lastOutput() << "\n";

  std::vector<Delivered> second;
  ASSERT_NO_THROW(second = client->fetch(target, {Mode::kKeep})) << proxy->log();
  EXPECT_TRUE(second.empty()) << c.client << " downloaded " << second.size() << " messages again:\n"
                              << client->lastOutput();

  EXPECT_EQ(search("ALL"), uids_);
  EXPECT_TRUE(search("DELETED").empty()) << "keep mode deleted something";
  EXPECT_TRUE(search("SEEN").empty()) << "downloads must not set \\Seen";
}

// ---------------------------------------------------------------------------------------------
// Delete mode with a size limit that makes the client skip the two largest messages: it
// downloads the others and only those leave INBOX, as on_delete says; the skipped ones stay
// unflagged. A message that arrives later is the only one the next run downloads and deletes.

constexpr std::size_t kDeleteSizeLimit = 250000;

struct DeleteCase {
  std::string client;
  Transport transport;
  std::string onDelete;  // flag | expunge
};

void PrintTo(const DeleteCase& c, std::ostream* out) {
  *out << c.client << " over " << transportName(c.transport) << ", on_delete=" << c.onDelete;
}

class ClientDeleteTest : public ClientTestBase, public ::testing::WithParamInterface<DeleteCase> {};

TEST_P(ClientDeleteTest, DeletesOnlyWhatItDownloaded) {
  const DeleteCase& c = GetParam();
  seed(smallMailbox());
  std::vector<std::uint32_t> skipped;
  std::vector<std::uint32_t> downloaded;
  std::vector<std::string> downloadedBodies;
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    if (bodies_[i].size() > kDeleteSizeLimit) {
      skipped.push_back(uids_[i]);
    } else {
      downloaded.push_back(uids_[i]);
      downloadedBodies.push_back(bodies_[i]);
    }
  }
  ASSERT_EQ(skipped.size(), 2u);
  auto proxy = startProxy(c.transport, c.onDelete);
  auto client = makeClient(c.client);
  const Account target = account(*proxy, c.transport);
  const FetchRun deleteRun{Mode::kDelete, kDeleteSizeLimit};

  std::vector<Delivered> first;
  ASSERT_NO_THROW(first = client->fetch(target, deleteRun)) << proxy->log();
  expectSameMessages(first, downloadedBodies, client->rules(), c.client + " first delete run");

  const std::uint32_t lateUid = dovecot_.appendMessage("alice", simpleMessage(900, 3000));
  const std::string lateBody = imapSession().body(lateUid);
  std::vector<Delivered> second;
  ASSERT_NO_THROW(second = client->fetch(target, deleteRun)) << proxy->log();
  expectSameMessages(second, {lateBody}, client->rules(), c.client + " second delete run");
  downloaded.push_back(lateUid);

  std::vector<std::uint32_t> all = search("ALL");
  std::vector<std::uint32_t> deleted = search("DELETED");
  auto contains = [](const std::vector<std::uint32_t>& set, std::uint32_t uid) {
    return std::binary_search(set.begin(), set.end(), uid);
  };
  for (auto uid : skipped) {
    EXPECT_TRUE(contains(all, uid)) << "skipped message " << uid << " was expunged";
    EXPECT_FALSE(contains(deleted, uid)) << "skipped message " << uid << " was flagged";
  }
  for (auto uid : downloaded) {
    if (c.onDelete == "flag") {
      EXPECT_TRUE(contains(all, uid)) << "on_delete=flag must not expunge " << uid;
      EXPECT_TRUE(contains(deleted, uid)) << "downloaded message " << uid << " not flagged";
    } else {
      EXPECT_FALSE(contains(all, uid)) << "on_delete=expunge left " << uid;
    }
  }
  EXPECT_EQ(all.size(), c.onDelete == "flag" ? uids_.size() + 1 : skipped.size());
  EXPECT_TRUE(search("SEEN").empty());

  // Deleted messages are gone from POP3's view and the large ones are still skipped.
  std::vector<Delivered> third;
  ASSERT_NO_THROW(third = client->fetch(target, deleteRun)) << proxy->log();
  EXPECT_TRUE(third.empty()) << client->lastOutput();
  EXPECT_EQ(search("ALL"), all);
}

std::string downloadName(const ::testing::TestParamInfo<DownloadCase>& info) {
  return info.param.client + "_" + transportName(info.param.transport) +
         (info.param.full ? "_full" : "_small");
}

INSTANTIATE_TEST_SUITE_P(clients, ClientDownloadTest,
                         ::testing::Values(DownloadCase{"fetchmail", Transport::kStls, true},
                                           DownloadCase{"fetchmail", Transport::kImplicit, false},
                                           DownloadCase{"fetchmail", Transport::kPlain, false},
                                           DownloadCase{"getmail", Transport::kImplicit, true},
                                           DownloadCase{"getmail", Transport::kPlain, false},
                                           DownloadCase{"mpop", Transport::kStls, true},
                                           DownloadCase{"mpop", Transport::kImplicit, false},
                                           DownloadCase{"mpop", Transport::kPlain, false},
                                           DownloadCase{"curl", Transport::kStls, true},
                                           DownloadCase{"curl", Transport::kImplicit, false},
                                           DownloadCase{"curl", Transport::kPlain, false},
                                           DownloadCase{"poplib", Transport::kStls, true},
                                           DownloadCase{"poplib", Transport::kImplicit, false},
                                           DownloadCase{"poplib", Transport::kPlain, false}),
                         downloadName);

std::string deleteName(const ::testing::TestParamInfo<DeleteCase>& info) {
  return info.param.client + "_" + transportName(info.param.transport) + "_" + info.param.onDelete;
}

INSTANTIATE_TEST_SUITE_P(clients, ClientDeleteTest,
                         ::testing::Values(DeleteCase{"fetchmail", Transport::kImplicit, "flag"},
                                           DeleteCase{"fetchmail", Transport::kStls, "expunge"},
                                           DeleteCase{"getmail", Transport::kImplicit, "flag"},
                                           DeleteCase{"getmail", Transport::kPlain, "expunge"},
                                           DeleteCase{"mpop", Transport::kImplicit, "flag"},
                                           DeleteCase{"mpop", Transport::kStls, "expunge"},
                                           DeleteCase{"curl", Transport::kImplicit, "flag"},
                                           DeleteCase{"curl", Transport::kStls, "expunge"},
                                           DeleteCase{"poplib", Transport::kImplicit, "flag"},
                                           DeleteCase{"poplib", Transport::kStls, "expunge"}),
                         deleteName);

}  // namespace
}  // namespace popbridge::test
