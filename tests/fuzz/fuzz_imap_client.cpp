// The IMAP client state machine under arbitrary server bytes and the calls
// its user makes. It must never crash, never write after it closed, never
// report a completion for a command it did not send, and never put the
// password (or the OAuth2 access token, which takes its place) on the wire
// outside the login.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/imap/client.h"

namespace {

using namespace popbridge::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

constexpr std::string_view kPassword = "Zq9-secret-Zq9";

class Harness : public ImapClientSink, public ImapClientEvents {
 public:
  ImapClient* client = nullptr;
  bool tlsPending = false;
  bool loggedIn = false;
  int loginEvents = 0;

  void sendToUpstream(std::string_view bytes) override {
    require(client->state() != ImapClient::State::Closed);
    if (loggedIn) require(bytes.find(kPassword) == std::string_view::npos);
  }
  void startUpstreamTls() override { tlsPending = true; }
  void log(LogSeverity, std::string_view message) override {
    // Logs quote the server's text; only a password the server never sent
    // must stay out of them.
    if (served.find(kPassword) == std::string::npos) {
      require(message.find(kPassword) == std::string_view::npos);
    }
  }
  std::string served;  // every byte fed to the client so far
  void onLoggedIn() override {
    require(!loggedIn);
    loggedIn = true;
    ++loginEvents;
  }
  void onLoginFailed(ImapLoginFailure) override {
    require(!loggedIn);
    ++loginEvents;
  }
  void onUntagged(const ImapEvent&) override { require(loggedIn); }
  void onBody(const ImapEvent&) override { require(loggedIn); }
  void onCompleted(const ImapEvent& tagged) override { require(loggedIn && !tagged.tag.empty()); }
  void onBroken(std::string_view) override {}
};

constexpr std::string_view kGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN AUTH=XOAUTH2 AUTH=OAUTHBEARER "
    "STARTTLS] ready\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  ImapClientOptions options;
  options.startTls = (data[0] & 1) != 0;
  options.login = static_cast<UpstreamLogin>((data[0] >> 1) % 3);
  Harness harness;
  ImapClient client(options, harness, harness);
  harness.client = &client;
  if (data[0] & 0x40) {
    client.connected(BearerLogin{"user", std::string(kPassword),
                                 static_cast<BearerMechanism>((data[0] >> 3) % 3), "host", 993});
  } else {
    client.connected("user", kPassword);
  }
  if (data[0] & 0x80) client.feed(kGreeting);

  std::size_t pos = 1;
  while (pos + 1 < size) {
    std::uint8_t op = data[pos];
    std::size_t length = data[pos + 1];
    pos += 2;
    std::string_view chunk(reinterpret_cast<const char*>(data) + pos, std::min(length, size - pos));
    pos += chunk.size();
    switch (op % 8) {
      case 0:
      case 1:
      case 2:
      case 3:
        harness.served.append(chunk);
        client.feed(chunk);
        break;
      case 4:
        if (harness.tlsPending) client.onTlsReady();
        harness.tlsPending = false;
        break;
      case 5:
        if (client.canSend()) {
          client.send(client.builder().uidFetch(std::to_string(chunk.size() + 1), "(BODY.PEEK[])"));
        }
        break;
      case 6:
        // A mailbox named like the password would trip the check on purpose.
        if (client.canSend() && chunk.find(kPassword) == std::string_view::npos) {
          client.send(client.builder().select(chunk));
        }
        break;
      case 7:
        if (chunk.size() % 2 == 0) {
          client.logout();
        } else {
          client.close();
        }
        require(client.state() == ImapClient::State::Closed);
        require(!client.awaitingReply());
        break;
    }
    require(harness.loginEvents <= 1);
  }
  return 0;
}
