"""The Slack app: Bolt app and handlers, Block Kit messages, App Home. The only package that imports
slack_sdk / slack_bolt."""
