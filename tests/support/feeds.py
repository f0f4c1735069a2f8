"""Sample RSS and Atom feeds for the loader and command tests."""

__all__ = ["ATOM", "RSS"]

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>Portal — UK</title><link>https://news.example.com/uk</link>
<item>
  <title>Bridge reopens after &lt;b&gt;repairs&lt;/b&gt;</title>
  <link>https://news.example.com/uk/bridge-reopens</link>
  <guid>https://news.example.com/uk/bridge-reopens?id=991</guid>
  <description>&lt;p&gt;The bridge is &lt;b&gt;open&lt;/b&gt; again
    &amp;amp; traffic flows.&lt;/p&gt; &lt;p&gt;More.&lt;/p&gt;</description>
  <category>Transport</category><category>Breaking</category><category>Bristol</category>
  <author>news@example.com (Ann Editor)</author>
  <pubDate>Thu, 26 Nov 2026 08:30:00 +0100</pubDate>
  <media:content url="https://i.example.com/bridge.jpg" medium="image" width="800" height="450"/>
</item>
<item>
  <title>No category here</title>
  <link>https://news.example.com/uk/plain</link>
  <guid isPermaLink="false">plain-1</guid>
  <pubDate>Thu, 26 Nov 2026 06:00:00 GMT</pubDate>
  <enclosure url="https://i.example.com/plain.png" type="image/png" length="1234"/>
</item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Portal Science</title>
  <id>urn:uuid:feed</id>
  <updated>2026-11-26T07:00:00Z</updated>
  <entry>
    <title>Comet visible tonight</title>
    <link href="https://news.example.com/science/comet"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <updated>2026-11-26T07:00:00Z</updated>
    <summary>Look north after dark.</summary>
    <content type="html">&lt;p&gt;First.&lt;/p&gt;&lt;p&gt;Second.&lt;/p&gt;</content>
    <author><name>Sam Stargazer</name></author>
    <category term="Space"/>
  </entry>
</feed>"""
