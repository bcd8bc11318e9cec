"""The interactions by name: what each key frame marks and the builder that makes it."""
from . import greetings as g, sparring as sp, together as tg

# What each key frame of a type marks, in order (meta["key_names"] repeats them per clip).
KEY_NAMES = {
    "handshake": ["hands meet", "hands let go"],
    "high_five": ["hands slap"],
    "punch_dodge": ["punch fully extended"],
    "push": ["push", "pushed person stops"],
    "hug": ["arms wrapped", "arms let go"],
    "wave": ["initiator waves", "other waves back"],
    "follow": ["leader sets off", "follower sets off", "leader stops"],
    "circle": ["initiator starts circling", "other starts circling"],
    "bow": ["initiator bows lowest", "other bows lowest"],
    "handover": ["hands meet on the object", "giver lets go"],
    "tug_of_war": ["hands grip", "winner starts the final pull", "final pull ends"],
    "kick_block": ["kick meets the block"],
    "point_look": ["arm points", "other looks there"],
    "shoulder_pat": ["first pat", "other has turned around"],
    "dance": ["hands join", "hands let go"],
    "clap_game": ["first clap together", "last clap together"],
    "conversation": ["initiator starts talking", "other answers"],
    "greet_walk": ["hands meet", "hands let go", "they set off together"],
    "fencing": ["lunge fully extended", "attacker back en garde"],
    "taekwondo": ["circling starts", "kick meets the block"],
}

BUILDERS = {
    "handshake": g.handshake, "high_five": g.high_five, "punch_dodge": sp.punch_dodge, "push": sp.push,
    "hug": g.hug, "wave": g.wave, "follow": tg.follow, "circle": tg.circle, "bow": g.bow,
    "handover": tg.handover, "tug_of_war": sp.tug, "kick_block": sp.kick_block, "point_look": tg.point_look,
    "shoulder_pat": g.shoulder_pat, "dance": tg.dance, "clap_game": tg.clap_game, "conversation": tg.conversation,
    "greet_walk": g.greet_walk, "fencing": sp.fencing, "taekwondo": sp.taekwondo,
}
INTERACTION_TYPES = list(BUILDERS)
