// InetAddress: parsing "HOST:PORT" forms, numeric IPs, formatting and round trips.

#include "plexus/inet_address.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <string>

namespace plexus {
namespace {

TEST(InetAddressTest, DefaultAndLoopbackConstructors) {
  InetAddress any(80);
  EXPECT_EQ(any.family(), AF_INET);
  EXPECT_EQ(any.toIpPort(), "0.0.0.0:80");
  EXPECT_EQ(any.sockLen(), sizeof(sockaddr_in));
  InetAddress lo(8080, /*loopback_only=*/true);
  EXPECT_EQ(lo.toIp(), "127.0.0.1");
  EXPECT_EQ(lo.port(), 8080);
  EXPECT_EQ(InetAddress().port(), 0);
}

TEST(InetAddressTest, ParseIpv4) {
  absl::StatusOr<InetAddress> a = InetAddress::parse("127.0.0.1:80");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->toIp(), "127.0.0.1");
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->toIpPort(), "127.0.0.1:80");
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a->sockAddr());
  EXPECT_EQ(ntohs(sin->sin_port), 80);
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
}

TEST(InetAddressTest, ParseBracketedIpv6) {
  absl::StatusOr<InetAddress> a = InetAddress::parse("[::1]:8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(a->toIp(), "::1");
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->toIpPort(), "[::1]:8080");
  EXPECT_EQ(a->sockLen(), sizeof(sockaddr_in6));
}

TEST(InetAddressTest, ParsePortOnlyMeansAllInterfaces) {
  for (const char* text : {":9000", "9000", "*:9000"}) {
    absl::StatusOr<InetAddress> a = InetAddress::parse(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    EXPECT_EQ(a->family(), AF_INET) << text;
    EXPECT_EQ(a->toIpPort(), "0.0.0.0:9000") << text;
  }
}

TEST(InetAddressTest, ParsePortLimits) {
  absl::StatusOr<InetAddress> zero = InetAddress::parse("1.2.3.4:0");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->port(), 0);
  absl::StatusOr<InetAddress> top = InetAddress::parse("1.2.3.4:65535");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->port(), 65535);
}

TEST(InetAddressTest, ParseHostName) {
  absl::StatusOr<InetAddress> a = InetAddress::parse("localhost:1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port(), 1);
  // IPv4 is preferred when the name has both.
  EXPECT_TRUE(a->toIp() == "127.0.0.1" || a->toIp() == "::1") << a->toIp();
  if (a->family() == AF_INET) {
    EXPECT_EQ(a->toIpPort(), "127.0.0.1:1");
  }
}

TEST(InetAddressTest, ParseErrors) {
  for (const char* text : {"x:abc", "1.2.3.4:70000", "1.2.3.4:65536", "1.2.3.4:", ":", "",
                           "1.2.3.4:-1", "[::1]", "[::1]8080", "[::1:80", "[::1]:", "localhost",
                           "1.2.3.4:80x"}) {
    absl::StatusOr<InetAddress> a = InetAddress::parse(text);
    EXPECT_FALSE(a.ok()) << "'" << text << "' parsed as " << a->toIpPort();
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << text;
      EXPECT_NE(a.status().message().find(text), std::string::npos) << a.status();
    }
  }
}

// Regression: "1.2.3:80" was taken the inet_aton way, as 1.2.0.3. Shorthand, hex and octal forms of
// an IPv4 address are refused with a message saying what is expected.
TEST(InetAddressTest, InetAtonShorthandsAreRefused) {
  for (const char* text : {"1.2.3:80", "127.1:80", "0x7f.1:80", "1:80", "017.0.0.1:80"}) {
    absl::StatusOr<InetAddress> a = InetAddress::parse(text);
    EXPECT_FALSE(a.ok()) << "'" << text << "' parsed as " << a->toIpPort();
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << text;
      EXPECT_NE(a.status().message().find("dotted-quad"), std::string::npos) << a.status();
    }
  }
  absl::StatusOr<InetAddress> ok = InetAddress::parse("1.2.0.3:80");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->toIpPort(), "1.2.0.3:80");
}

TEST(InetAddressTest, UnresolvableHostIsNotFound) {
  absl::StatusOr<InetAddress> a = InetAddress::parse("no-such-host.invalid:80");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(a.status().message().find("no-such-host.invalid"), std::string::npos);
}

TEST(InetAddressTest, ToIpPortRoundTrip) {
  for (const char* text : {"127.0.0.1:80", "10.1.2.3:65535", "0.0.0.0:0", "[::1]:8080",
                           "[fe80::1:2]:443", "[::]:1", "[2001:db8::ff]:9000"}) {
    absl::StatusOr<InetAddress> a = InetAddress::parse(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    EXPECT_EQ(a->toIpPort(), text);
    absl::StatusOr<InetAddress> b = InetAddress::parse(a->toIpPort());
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->toIpPort(), text);
    EXPECT_EQ(b->family(), a->family());
    EXPECT_EQ(b->sockLen(), a->sockLen());
  }
}

TEST(InetAddressTest, FromIp) {
  absl::StatusOr<InetAddress> v4 = InetAddress::fromIp("192.168.1.20", 443);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->toIpPort(), "192.168.1.20:443");

  absl::StatusOr<InetAddress> v6 = InetAddress::fromIp("::1", 80);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->toIpPort(), "[::1]:80");

  absl::StatusOr<InetAddress> bracketed = InetAddress::fromIp("[::1]", 81);
  ASSERT_TRUE(bracketed.ok());
  EXPECT_EQ(bracketed->toIpPort(), "[::1]:81");

  for (const char* bad : {"localhost", "1.2.3", "256.1.1.1", "", "[]", "::g"}) {
    absl::StatusOr<InetAddress> a = InetAddress::fromIp(bad, 1);
    EXPECT_FALSE(a.ok()) << bad;
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(InetAddressTest, ResolveNumericSkipsLookup) {
  absl::StatusOr<InetAddress> a = InetAddress::resolve("10.0.0.1", 5);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->toIpPort(), "10.0.0.1:5");
}

TEST(InetAddressTest, FromSockaddr) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(1234);
  ASSERT_EQ(::inet_pton(AF_INET, "8.8.4.4", &sin.sin_addr), 1);
  EXPECT_EQ(InetAddress(sin).toIpPort(), "8.8.4.4:1234");
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(4321);
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr), 1);
  EXPECT_EQ(InetAddress(sin6).toIpPort(), "[2001:db8::1]:4321");
}

}  // namespace
}  // namespace plexus
