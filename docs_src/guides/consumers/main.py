import dataclasses

from buildflow import Flow
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.local import File
from buildflow.types.portable import FileFormat

app = Flow()
signups = GCPPubSubTopic("my-project", "signups")
welcomes = GCPPubSubSubscription("my-project", "signups-welcome").options(topic=signups)
app.manage(signups, welcomes)


@dataclasses.dataclass
class Signup:
    email: str
    plan: str


@dataclasses.dataclass
class Welcome:
    email: str
    text: str


@app.collector("/signups", method="POST", sink=signups)
def publish(signup: Signup) -> Signup:
    """Answered once Pub/Sub holds the message."""
    return signup


@app.consumer(source=welcomes, sink=File("rows/welcomes.jsonl", FileFormat.JSON))
class Welcomer:
    def setup(self) -> None:
        """Once per worker, before the first message."""
        self.texts = {"free": "Welcome!", "pro": "Welcome, and thank you!"}

    def process(self, signup: Signup) -> Welcome:
        """One message in, one row out; the message is acknowledged once the row is on disk."""
        return Welcome(email=signup.email, text=self.texts[signup.plan])
