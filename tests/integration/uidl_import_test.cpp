// `popbridge uidl capture` against a real old POP3 server (the fixture Dovecot's own POP3, over
// POP3S, STLS and, with --allow-plaintext, in the clear), then `popbridge uidl import` of what it
// wrote: the store holds one UIDVALIDITY-0 entry per message with Dovecot's UIDLs, in order.
// And, disabled until the session serves %{stable}, the whole migration: after Dovecot's
// UIDVALIDITY changes, popbridge serves the UIDLs Dovecot's POP3 served before.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "proxy/state_store.h"
#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

using proxy::SqliteStateStore;
using proxy::StateStore;

std::string message(int n) {
  const std::string id = std::to_string(n);
  return "From: Sender " + id + " <s" + id +
         "@example.org>\r\nTo: <r@example.org>\r\nSubject: message " + id + "\r\nDate: Mon, " + id +
         " Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + id +
         ".uidl-import@example.org>\r\n\r\nBody of message " + id + ".\r\n";
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Dovecot's own POP3 UIDL listing, in message order.
std::vector<std::string> dovecotUidls(DovecotFixture& dovecot, const DovecotUser& user) {
  Pop3TestClient pop(dovecot.pop3Port());
  EXPECT_EQ(pop.command("USER " + user.name).rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("PASS " + user.password).rfind("+OK", 0), 0u);
  const std::string listing = pop.multiLine("UIDL");
  pop.command("QUIT");
  return listingValues(listing);
}

class UidlImportTest : public ::testing::Test {
 protected:
  UidlImportTest() : dir_("popbridge-uidl-import") {}

  static DovecotFixture& dovecot() { return DovecotFixture::shared(); }

  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }

  // A user of its own with `count` messages.
  DovecotUser seededUser(const std::string& name, int count) {
    const DovecotUser user = dovecot().addUser(name);
    std::vector<std::string> messages;
    for (int i = 1; i <= count; ++i) messages.push_back(message(i));
    dovecot().seedMaildir(user.name, messages);
    test::writeTextFile(path(name + ".password"), user.password + "\n");
    return user;
  }

  CommandResult popbridge(std::vector<std::string> args) {
    const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
    args.insert(args.begin(), {custom ? custom : POPBRIDGE_BINARY, "uidl"});
    CommandOptions options;
    options.timeoutMs = 60000;
    CommandResult result = runCommand(args, options);
    if (std::getenv("PBTEST_SHOW_OUTPUT") != nullptr) std::cerr << result.output;
    return result;
  }

  CommandResult capture(const DovecotUser& user, std::vector<std::string> transport,
                        const std::string& output) {
    transport.insert(transport.begin(), "capture");
    transport.insert(transport.end(), {user.name, "--password-file", path(user.name + ".password"),
                                       "--output", output});
    return popbridge(transport);
  }

  std::string writeConfig() {
    const std::string config = path("popbridge.toml");
    writeTextFile(config,
                  "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\n"
                  "allow_plaintext_auth = true\n"
                  "[upstream]\nhost = \"127.0.0.1\"\nport = " +
                      std::to_string(dovecot().imapPort()) +
                      "\ntls = \"none\"\n[state]\npath = \"" + path("state.db") + "\"\n");
    return config;
  }

  std::vector<StateStore::UidlEntry> stored(const std::string& account) {
    std::string error;
    auto store = SqliteStateStore::open(path("state.db"), error);
    EXPECT_TRUE(store) << error;
    std::vector<StateStore::UidlEntry> entries;
    if (store) {
      store->loadUidls({account, "INBOX"},
                       [&](StateStore::Status, std::vector<StateStore::UidlEntry> got) {
                         entries = std::move(got);
                       });
    }
    return entries;
  }

  TempDir dir_;
};

TEST_F(UidlImportTest, CaptureFromDovecotPop3ThenImportStoresItsUidls) {
  const DovecotUser user = seededUser("uidl-capture", 3);
  const std::vector<std::string> uidls = dovecotUidls(dovecot(), user);
  ASSERT_EQ(uidls.size(), 3u);

  const std::string pop3s = "localhost:" + std::to_string(dovecot().pop3sPort());
  const std::string file = path("capture.txt");
  CommandResult result = capture(user, {"--tls", "--ca-file", dovecot().pki().caCert, pop3s}, file);
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_TRUE(contains(result.output, "captured 3 messages")) << result.output;
  EXPECT_TRUE(contains(result.output, "certificate verified")) << result.output;
  EXPECT_FALSE(contains(result.output, user.password)) << "the password is never printed";
  const std::string captured = readWholeFile(file);
  EXPECT_EQ(captured.rfind("popbridge-uidl-import 1\nmessage " + uidls[0] + " ", 0), 0u)
      << captured;
  EXPECT_TRUE(contains(captured, "Message-ID: <2.uidl-import@example.org>")) << captured;

  // The same server over STLS and in the clear writes the same file.
  const std::string plainPort = "127.0.0.1:" + std::to_string(dovecot().pop3Port());
  result = capture(user,
                   {"--starttls", "--ca-file", dovecot().pki().caCert,
                    "localhost:" + std::to_string(dovecot().pop3Port())},
                   path("stls.txt"));
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_EQ(readWholeFile(path("stls.txt")), captured);
  result = capture(user, {"--allow-plaintext", plainPort}, path("plain.txt"));
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_EQ(readWholeFile(path("plain.txt")), captured);

  const std::string config = writeConfig();
  result = popbridge({"import", "--config", config, user.name, file});
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_TRUE(contains(result.output, "imported 3 UIDLs for " + user.name + " folder INBOX"))
      << result.output;

  const auto entries = stored(user.name);
  ASSERT_EQ(entries.size(), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(entries[i].key, (protocol::UidKey{0, i + 1}));
    EXPECT_EQ(entries[i].uidl, uidls[i]);
    EXPECT_EQ(entries[i].messageId, std::to_string(i + 1) + ".uidl-import@example.org");
    EXPECT_EQ(entries[i].size, message(static_cast<int>(i) + 1).size());
    EXPECT_FALSE(entries[i].headerHash.empty());
  }
}

TEST_F(UidlImportTest, CaptureFailuresLeaveNoFile) {
  const DovecotUser user = seededUser("uidl-capture-fail", 1);
  const std::string plain = "127.0.0.1:" + std::to_string(dovecot().pop3Port());

  // USER/PASS in the clear only when asked for.
  CommandResult result = capture(user, {plain}, path("a.txt"));
  EXPECT_EQ(result.exitCode, 2) << result.describe();
  EXPECT_TRUE(contains(result.output, "--allow-plaintext")) << result.output;
  EXPECT_EQ(access(path("a.txt").c_str(), F_OK), -1);

  // A wrong password: the server's refusal, no file, the password never shown.
  writeTextFile(path("wrong.password"), "not-the-Password-7\n");
  result = popbridge({"capture", "--allow-plaintext", plain, user.name, "--password-file",
                      path("wrong.password"), "--output", path("b.txt")});
  EXPECT_EQ(result.exitCode, 1) << result.describe();
  EXPECT_TRUE(contains(result.output, "refused the login")) << result.output;
  EXPECT_FALSE(contains(result.output, "not-the-Password-7")) << result.output;
  EXPECT_EQ(access(path("b.txt").c_str(), F_OK), -1);
  EXPECT_EQ(access(path("b.txt.partial").c_str(), F_OK), -1);

  // A certificate that does not verify: Dovecot's test CA is not in the system bundle.
  result =
      capture(user, {"--tls", "localhost:" + std::to_string(dovecot().pop3sPort())}, path("c.txt"));
  EXPECT_EQ(result.exitCode, 1) << result.describe();
  EXPECT_TRUE(contains(result.output, "certificate")) << result.output;
  EXPECT_EQ(access(path("c.txt").c_str(), F_OK), -1);
}

// Devices moved from Dovecot's POP3 keep its UIDLs through popbridge, even after a UIDVALIDITY
// change that happened after the import (Dovecot may number the files in another order then).
TEST_F(UidlImportTest, ImportedUidlsAreServedAfterAUidValidityChange) {
  const DovecotUser user = seededUser("uidl-migrate", 3);
  const std::vector<std::string> before = dovecotUidls(dovecot(), user);
  ASSERT_EQ(before.size(), 3u);
  std::uint32_t uidValidityBefore = 0;
  {
    ImapTestClient imap(dovecot().imapPort());
    imap.login(user.name, user.password);
    uidValidityBefore = imap.select().uidValidity;
    imap.logout();
  }

  const std::string file = path("capture.txt");
  CommandResult result = capture(
      user, {"--allow-plaintext", "127.0.0.1:" + std::to_string(dovecot().pop3Port())}, file);
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  const std::string statePath = path("state.db");
  result = popbridge({"import", "--config", writeConfig(), user.name, file});
  ASSERT_EQ(result.exitCode, 0) << result.describe();

  // Dovecot forgets its UIDs: a new UIDVALIDITY (the dovecot-uidvalidity files stay, so it is
  // the next value, never the old one again).
  const std::string maildir = dovecot().maildirPath(user.name);
  for (const std::string& file : listFiles(maildir)) {
    const std::string name = file.substr(file.rfind('/') + 1);
    if (name == "dovecot-uidlist" || name.rfind("dovecot.index", 0) == 0) {
      ASSERT_EQ(unlink(file.c_str()), 0) << file;
    }
  }
  {
    ImapTestClient imap(dovecot().imapPort());
    imap.login(user.name, user.password);
    const auto info = imap.select();
    ASSERT_NE(info.uidValidity, uidValidityBefore) << "the test needs a UIDVALIDITY change";
    ASSERT_EQ(info.exists, 3u);
    imap.logout();
  }
  ASSERT_NE(dovecotUidls(dovecot(), user), before) << "Dovecot's own POP3 UIDLs changed";

  PopbridgeProcess::Options options;
  options.mailbox = "uidl_format = \"%{stable}\"\n";
  options.extra = "[state]\npath = \"" + statePath + "\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  Pop3TestClient pop(proxy.port());
  ASSERT_EQ(pop.command("USER " + user.name).rfind("+OK", 0), 0u);
  ASSERT_EQ(pop.command("PASS " + user.password).rfind("+OK", 0), 0u);
  const std::string listing = pop.multiLine("UIDL");
  pop.command("QUIT");
  std::vector<std::string> served = listingValues(listing);
  std::vector<std::string> expected = before;
  std::sort(served.begin(), served.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(served, expected) << listing << "\n" << proxy.log();
}

}  // namespace
}  // namespace popbridge::test
