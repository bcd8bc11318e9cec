"""Captions, from templates with synonyms: three per clip in InterHuman's style, and one from a template no
training clip uses (`heldout_template`) for test clips."""
import re

# Three captions per clip in InterHuman's style. {a} is the initiator, {b} the other person; [x|y] picks
# one synonym. Two captions call them "one person" / "the other" (initiator named first); one calls them
# "the first person" (index 0) / "the second person" (index 1), so roles are recoverable from the text.
# Side words are exactly left/right and clockwise/counterclockwise: mirroring swaps those words, so no
# template may use "right" or "left" in any other sense. A (flag, template) pair is only used when the
# clip's flag is true ("!flag": false); None means always.

TEMPLATES = {
    "handshake": [
        ("slow", "{a} slowly holds out the {hand} hand and {b} [shakes|takes] it."),
        ("walk", "{a} [walks up to|approaches] {b} and [shakes their hand|shakes hands with them] "
                 "using the {hand} hand."),
        (None, "{a} [reaches out|holds out] the {hand} hand to {b}, who [grasps|takes] it, and they shake hands."),
        (None, "{a} offers {b} a {hand}-handed handshake and {b} [accepts|returns] it."),
        (None, "two people shake {hand} hands; {a} [reaches out first|starts the handshake] and {b} responds."),
        ("walk", "{a} [walks over to|comes up to] {b} and the two [greet each other with|exchange] "
                 "a {hand}-hand handshake."),
        ("away", "{a} comes over to {b}, who turns toward them, and they shake {hand} hands."),
    ],
    "high_five": [
        (None, "{a} raises the {hand} hand and {b} [gives them|answers with] a high five."),
        ("walk", "{a} [walks up to|approaches] {b} and they slap a {hand}-handed high five."),
        (None, "{a} [lifts|holds up] the {hand} hand for a high five, and {b} [slaps|hits] it."),
        (None, "two people high-five with their {hand} hands, {a} raising a hand first and {b} joining in."),
        (None, "{a} [starts|initiates] a {hand}-hand high five with {b}."),
        ("away", "{a} calls {b} over for a high five; {b} turns around and they slap {hand} hands."),
    ],
    "punch_dodge": [
        (None, "{a} throws a {hand}-handed punch at {b}, who [dodges|avoids] it by {dodge_ing}."),
        (None, "{a} punches at the face of {b} with the {hand} fist and {b} {dodge_verb}."),
        (None, "{a} [swings|throws] a {hand} punch, but {b} {dodge_verb}."),
        (None, "in a fighting stance, {a} attacks {b} with a {hand} jab and {b} {dodge_verb} to avoid it."),
        (None, "{a} tries to hit {b} with the {hand} hand; {b} [dodges|evades] the punch."),
    ],
    "push": [
        ("fast", "{a} suddenly shoves {b}, who stumbles back."),
        (None, "{a} pushes {b} [hard|forcefully] with both hands, and {b} stumbles backward."),
        ("walk", "{a} [walks up to|approaches] {b} and shoves them in the chest; {b} staggers back a few steps."),
        (None, "{a} shoves {b} away, making {b} [stumble|stagger] backward."),
        (None, "{a} pushes {b} in the chest and {b} [loses balance|is knocked back] and steps back."),
        (None, "with both hands, {a} pushes {b}, who [stumbles|staggers] back."),
    ],
    "hug": [
        ("fast", "{a} [eagerly|enthusiastically] hugs {b}, and {b} hugs back."),
        ("walk", "{a} [walks up to|approaches] {b} and [hugs them|gives them a hug]."),
        (None, "{a} opens their arms and {b} [embraces them|hugs them back]."),
        (None, "two people hug each other; {a} [reaches out first|starts the embrace] and {b} hugs back."),
        (None, "{a} wraps their arms around {b}, and {b} hugs back."),
        (None, "{a} and {b} [embrace|hug] warmly, swaying a little, then let go."),
        ("both", "{a} and {b} walk toward each other and hug."),
        ("away", "{a} comes up to {b}, who turns around, and they hug."),
    ],
    "wave": [
        ("fast", "{a} waves [eagerly|enthusiastically] at {b} with the {hand} hand, and {b} waves back."),
        (None, "{a} waves [at|to] {b} from [a distance|afar] with the {hand} hand, and {b} waves back."),
        (None, "standing far apart, {a} raises the {hand} hand and waves; {b} [waves back|returns the wave]."),
        ("turn", "{a} waves the {hand} hand to get the attention of {b}, who turns around and waves back."),
        (None, "{a} greets {b} from [far away|a distance] by waving the {hand} hand, and {b} answers with a wave."),
        (None, "{a} [waves|gives a wave] with their {hand} hand and {b} waves in return."),
    ],
    "follow": [
        ("slow", "{a} walks slowly ahead and {b} follows at the same unhurried pace."),
        ("fast", "{a} walks off briskly and {b} hurries after them."),
        (None, "{a} walks [ahead|forward] and {b} follows [behind them|a few steps behind]."),
        (None, "{a} leads the way while {b} [follows|walks after them]."),
        (None, "{a} [starts walking|sets off] and {b} [trails|follows] behind."),
        ("turn", "{a} walks along a curved path and {b} follows in their footsteps."),
        (None, "{a} walks [off|away], and shortly after {b} follows them."),
    ],
    "circle": [
        (None, "two people circle each other {dir}, {a} moving first and {b} following."),
        (None, "{a} and {b} walk around each other in a {dir} circle."),
        (None, "{a} starts to circle {dir} around {b}, and {b} [mirrors them|does the same], keeping their distance."),
        ("guard", "{a} and {b} [square up|face off] with fists raised and circle {dir}."),
        (None, "facing each other, {a} and {b} [step|move] sideways in a {dir} direction."),
        (None, "{a} [sidesteps|moves sideways] {dir} and {b} [follows suit|circles along], staying face to face."),
    ],
    "bow": [
        ("slow", "{a} bows slowly and deeply to {b}, and {b} bows back."),
        (None, "{a} bows to {b}, and {b} bows back."),
        (None, "{a} [bows|makes a bow] [politely|respectfully] and {b} [returns the bow|bows in return]."),
        ("chest", "{a} bows with the {hand} hand on their chest, and {b} bows back."),
        ("chest", "placing the {hand} hand on the chest, {a} bows to {b}, who [returns the bow|bows too]."),
        (None, "two people bow to each other, {a} first and then {b}."),
        ("walk", "{a} walks up to {b} and bows; {b} bows back."),
        ("away", "{a} waits for {b} to turn around, then bows, and {b} bows back."),
    ],
    "handover": [
        (None, "{a} hands an object to {b} with the {hand} hand."),
        ("walk", "{a} [walks up to|approaches] {b} and gives them something with the {hand} hand."),
        (None, "{a} passes {b} an item using the {hand} hand, and {b} takes it."),
        (None, "{a} [holds out|offers] something in the {hand} hand; {b} reaches out and takes it."),
        (None, "{a} gives {b} an object held in the {hand} hand, and {b} [accepts|receives] it."),
        ("away", "{a} gets the attention of {b}, who turns around, and hands them something with the {hand} hand."),
    ],
    "tug_of_war": [
        ("!rope", "{a} wins a tug of war against {b}, the two pulling on each other's hands."),
        ("!rope", "two people hold hands and pull against each other, and {a} drags {b} forward."),
        ("!rope", "{a} [grabs|takes] the hands of {b}; they lean back and tug until {b} is pulled off balance."),
        ("!rope", "holding hands, {a} pulls hard against {b} and drags them [along|forward]."),
        ("rope", "{a} and {b} play tug of war with a rope, both leaning back, and {a} pulls {b} over."),
        ("rope", "gripping one rope with both hands, {a} [outpulls|drags] {b} toward them."),
        ("rope", "{a} and {b} lean back and pull on a rope until {a} wins."),
        (None, "in a tug of war, {a} [outpulls|overpowers] {b}."),
    ],
    "kick_block": [
        (None, "{a} kicks at {b} with the {hand} leg, and {b} blocks it with their hands."),
        (None, "{a} throws a {hand}-leg kick at the stomach of {b}; {b} [blocks|stops] it and steps back."),
        (None, "{a} [launches|throws] a front kick with the {hand} foot, and {b} [blocks|guards against] it."),
        (None, "in a fighting stance, {a} kicks {b} with the {hand} leg while {b} defends with both arms."),
        (None, "{a} attacks with a {hand} kick and {b} [parries|blocks] it."),
    ],
    "point_look": [
        (None, "{a} points [at something|somewhere] [in the distance|far away] with the {hand} hand, "
               "and {b} looks [there|in that direction]."),
        (None, "{a} raises the {hand} arm to point, and {b} turns to look where they point."),
        (None, "{a} shows {b} something by pointing with the {hand} hand; {b} [turns their head|looks] that way."),
        (None, "{a} points with the {hand} index finger and {b} follows the gesture with their eyes."),
        ("beside", "{a} stands beside {b} and points [into the distance|ahead] with the {hand} hand, and {b} looks."),
    ],
    "shoulder_pat": [
        ("shoulder", "{a} walks up behind {b} and pats them on the shoulder with the {hand} hand; {b} turns around."),
        ("shoulder", "{a} taps {b} on the shoulder with the {hand} hand, and {b} turns to face them."),
        ("!shoulder", "{a} [walks up behind|approaches] {b} and pats their back with the {hand} hand; "
                      "{b} turns around."),
        ("!shoulder", "{a} gives {b} a pat on the back with the {hand} hand, and {b} looks round."),
        (None, "{a} [gets|catches] the attention of {b} with a pat of the {hand} hand, and {b} turns around."),
        (None, "{a} comes from behind and [pats|taps] {b} with the {hand} hand; {b} turns to look."),
    ],
    "dance": [
        (None, "{a} and {b} hold both hands and dance, turning {dir} together."),
        (None, "{a} takes both hands of {b} and they sway to the music, turning around each other {dir}."),
        (None, "two people dance face to face holding hands, {a} leading and {b} following, turning {dir}."),
        ("fast", "{a} and {b} dance [energetically|with enthusiasm], holding hands and spinning {dir}."),
        ("slow", "{a} and {b} dance slowly, holding hands and turning {dir}."),
        (None, "holding hands, {a} leads {b} in a little dance that turns {dir}."),
    ],
    "clap_game": [
        (None, "{a} and {b} play a clapping game, clapping their own hands and then each other's."),
        (None, "{a} starts a hand-clapping game with {b}: they clap, then slap both hands together."),
        (None, "facing each other, {a} and {b} clap in rhythm, meeting each other's palms on every beat."),
        ("fast", "{a} and {b} play a fast clapping game, [slapping|clapping] each other's hands."),
        ("walk", "{a} walks up to {b} and the two play a clapping game."),
        (None, "{a} raises both hands and {b} joins in a game of clapping hands together."),
    ],
    "conversation": [
        (None, "{a} talks to {b}, gesturing with the hands, and {b} [nods|listens] and then answers."),
        (None, "{a} and {b} have a conversation; {a} speaks first with lively gestures and {b} replies."),
        (None, "{a} explains something to {b} with the {hand} hand moving, and {b} nods before responding."),
        ("again", "{a} and {b} chat face to face, taking turns to speak and gesture."),
        ("walk", "{a} walks up to {b} and starts talking with gestures; {b} listens and answers."),
        (None, "standing face to face, {a} tells {b} something with hand gestures and {b} answers back."),
    ],
    "greet_walk": [
        (None, "{a} shakes hands with {b}, and then the two walk off together side by side."),
        ("walk", "{a} [walks up to|approaches] {b}, they shake {hand} hands and leave together."),
        (None, "{a} greets {b} with a {hand}-handed handshake, then they turn and walk away side by side."),
        (None, "after {a} and {b} shake hands, they walk off [together|next to each other]."),
        ("walk", "{a} comes up to {b}, shakes their hand, and they stroll off together."),
        (None, "{a} offers {b} a handshake; then both turn and walk away together, chatting."),
    ],
    "fencing": [
        (None, "{a} and {b} fence; {a} lunges with the sword in the {hand} hand and {b} parries."),
        ("advance", "{a} advances on {b}, who retreats, then {a} lunges and {b} parries the attack."),
        (None, "in a fencing bout, {a} attacks {b} with a lunge and {b} [parries|blocks] it."),
        (None, "{a} thrusts a sword at {b} with the {hand} hand, and {b} parries and leans back."),
        ("fast", "{a} quickly lunges at {b}, who parries just in time."),
        (None, "two fencers face off; {a} lunges forward and {b} parries, then {a} recovers."),
    ],
    "taekwondo": [
        (None, "{a} and {b} spar in taekwondo, circling {dir}; {a} kicks with the {hand} leg and {b} blocks."),
        (None, "in a sparring match, {a} and {b} circle each other {dir}, then {a} throws a {hand} kick that {b} blocks."),
        (None, "{a} and {b} move {dir} around each other with guards up until {a} kicks and {b} blocks."),
        (None, "two people spar: {a} attacks with a {hand}-leg kick and {b} blocks it with the hands."),
        (None, "{a} and {b} trade blows in a sparring bout: {a} kicks with the {hand} leg, {b} blocks it."),
        (None, "guards up, {a} and {b} circle {dir}; {a} kicks and {b} defends."),
    ],
}

_DODGE_WORDS = {  # dodge style -> (gerund phrases, verb phrases)
    "back": (["leaning back", "pulling back"], ["leans back out of reach", "pulls the head back"]),
    "duck": (["ducking", "crouching down"], ["ducks under it", "crouches under the punch"]),
    "side": (["slipping to the side", "leaning sideways"], ["sways to the side", "slips aside"]),
}


def _flag_ok(cond, flags):
    if cond is None:
        return True
    if cond.startswith("!"):
        return not flags.get(cond[1:], False)
    return bool(flags.get(cond, False))


def _render(template, rng, **kw):
    """Fill [x|y] synonyms and {names}; capitalise the first letter."""
    text = re.sub(r"\[([^\]]*)\]", lambda m: str(rng.choice(m.group(1).split("|"))), template)
    text = text.format(**kw)
    return text[0].upper() + text[1:]


def heldout_template(kind: str) -> str:
    """The template of `kind` no clip's captions use (its last): test clips carry one sentence from it in
    meta['unseen_captions'], a sentence no training clip ever had, to tell whether a text encoder generalises."""
    return TEMPLATES[kind][-1][1]


def make_captions(rng, kind, built, ini, test: bool = False) -> tuple:
    """Three different captions, one of them naming people by index ("the first/second person"), and the
    unseen-template captions: one from the held-out template for a test clip whose flags allow it, else none."""
    held = heldout_template(kind)
    cands = [tpl for cond, tpl in TEMPLATES[kind] if _flag_ok(cond, built.flags) and tpl != held]
    order = rng.permutation(len(cands))[:3]
    forms = ["one", "one", "index"]
    rng.shuffle(forms)
    kw = dict(hand=built.hand, dir=built.direction)
    if kind == "punch_dodge":
        ing, verb = _DODGE_WORDS[built.flags["dodge"]]
        kw.update(dodge_ing=str(rng.choice(ing)), dodge_verb=str(rng.choice(verb)))
    names = ("the first person", "the second person")
    out = []
    for form, i in zip(forms, order):
        if form == "one":
            a, b = str(rng.choice(["one person", "a person"])), str(rng.choice(["the other person", "the other"]))
        else:
            a, b = names[ini], names[1 - ini]
        out.append(_render(cands[i], rng, a=a, b=b, **kw))
    unseen = []
    if test and _flag_ok(TEMPLATES[kind][-1][0], built.flags):
        unseen.append(_render(held, rng, a=str(rng.choice(["one person", "a person"])), b="the other person", **kw))
    return out, unseen
