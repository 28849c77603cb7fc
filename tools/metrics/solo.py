"""The accuracy of a SOLO model on Fashion-MNIST images, by
PyTorch greedy decoding."""
from tools.data.fashion import CLASSES, caption_of
from tools.models.solo import greedy_batch, patches_of


def evaluate(model, tok, tasks, images, labels, batch=50, max_answer=16, max_caption=56):
    """Answer accuracy ("What is this?" -> exact class name) and caption
    accuracy (exact caption) of greedy decoding."""
    cfg = model.cfg
    model.eval()
    right_a = right_c = 0
    for s in range(0, len(images), batch):
        p = patches_of(images[s:s + batch])
        lab = labels[s:s + batch]
        ans = greedy_batch(model, tasks.answer_prompts[0], p, max_answer, cfg.stop_ids,
                           cfg.suppress_from)
        cap = greedy_batch(model, tasks.caption_prompt, p, max_caption, cfg.stop_ids,
                           cfg.suppress_from)
        for b, c in enumerate(lab):
            right_a += tok.decode(ans[b]).strip() == CLASSES[c]
            right_c += tok.decode(cap[b]).strip() == caption_of(c)
    return right_a / len(images), right_c / len(images)
